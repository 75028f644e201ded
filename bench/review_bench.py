"""Review inbox at 100,000 photos and 1,000,000 tag suggestions: every action's server time.

Loads the synthetic 100k library of ``bench/search_bench.py`` (COPY), adds a
vocabulary of tags and ten suggestions per photo drawn from a Zipf-like
distribution (the commonest tag has tens of thousands), then drives the real
views through Django's test client (URL routing, middleware, sessions,
CSRF, templates: the whole server side of a request) as a signed-in staff
user with htmx headers: the board of a tag, accepting one photo, rejecting a
selection, undo, the bulk preview, a photo's tags. Baseline in the same run:
the board of the largest tag without the (tag, state, score) index.

Run: ``.venv/bin/python bench/review_bench.py [--photos 100000] [--per-photo 10] [--tags 2000] [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_bench as sb  # noqa: E402  (names its bench database, SHOEBOX_DB_NAME)

import benchdb  # noqa: E402
from measure import timed  # noqa: E402

HTMX = {"HTTP_HX_REQUEST": "true"}


def load_tags(conn, photos: int, per_photo: int, n_tags: int, seed: int = 5) -> tuple[int, float]:
    """A vocabulary of ``n_tags`` and ``per_photo`` suggestions per photo; returns (rows, seconds)."""
    from tagging.models import PhotoTag, Tag

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    sb.copy_model(conn, Tag, {"id": list(range(1, n_tags + 1)), "name": [f"tag {i:04d}" for i in range(n_tags)],
                              "path": [f"tag {i:04d}" for i in range(n_tags)], "status": ["active"] * n_tags})
    weights = 1.0 / np.arange(1, n_tags + 1) ** 0.9
    weights /= weights.sum()
    photo_ids, tag_ids = [], []
    for pk in range(1, photos + 1):
        chosen = rng.choice(n_tags, size=per_photo, replace=False, p=weights) + 1
        photo_ids += [pk] * per_photo
        tag_ids += chosen.tolist()
    n = len(photo_ids)
    scores = rng.normal(0.5, 1.5, size=n)
    sb.copy_model(conn, PhotoTag, {
        "photo_id": photo_ids, "tag_id": tag_ids, "source": ["caption"] * n, "state": ["suggested"] * n,
        "term": [""] * n, "model": ["transformers:bench"] * n, "prompt_version": ["3"] * n,
        "score": scores.tolist(), "similarity": (0.2 + scores * 0.02).tolist(),
    })
    conn.execute("SELECT setval('tagging_tag_id_seq', %s)", [n_tags])
    return n, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--per-photo", type=int, default=10)
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    lib = sb.make_library(args.photos, 32, max(10, args.photos // 100))
    params = benchdb.create()
    conn = sb.bench_connection(params)
    try:
        sb.load_library(conn, lib, "review-bench")
        rows, seconds = load_tags(conn, args.photos, args.per_photo, args.tags)
        conn.execute("VACUUM ANALYZE")
        from django.contrib.auth import get_user_model
        from django.test import Client

        from tagging.models import PhotoTag, Tag

        from django.conf import settings
        from django.test.utils import override_settings

        # Pages link their CSS by the collected manifest in production; here, as in tests, without one.
        override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
        staff = get_user_model().objects.create_user("bench", password="bench-password-1", is_staff=True)
        client = Client(HTTP_HOST="127.0.0.1")  # an allowed host, as the browser sends
        client.force_login(staff)
        big = Tag.objects.get(pk=1)
        middle = Tag.objects.get(pk=args.tags // 10)
        big_n = PhotoTag.objects.filter(tag=big).count()
        mid_n = PhotoTag.objects.filter(tag=middle).count()
        big_photos = list(PhotoTag.objects.filter(tag=big).order_by("photo_id").values_list("photo_id", flat=True))
        some_photo = big_photos[len(big_photos) // 2]

        def get(url, **extra):
            response = client.get(url, **extra)
            assert response.status_code == 200, (url, response.status_code)

        def post(url, data):
            response = client.post(url, data, **HTMX)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])

        cases = [
            (f"board of the largest tag ({big_n:,} suggestions)", lambda i=0: get(f"/review/tag/{big.pk}/", **HTMX)),
            (f"board of a middling tag ({mid_n:,})", lambda i=0: get(f"/review/tag/{middle.pk}/", **HTMX)),
            ("accept one photo (returns the board)",
             lambda i=0: post(f"/review/tag/{big.pk}/decide/", {"action": "accept", "photo": big_photos[2 * i]})),
            ("reject a selection of 20 (returns the board)",
             lambda i=0: post(f"/review/tag/{big.pk}/decide/",
                              {"action": "reject", "photo": big_photos[1000 + 20 * i: 1020 + 20 * i]})),
            ("undo (returns the board)", lambda i=0: post("/review/undo/", {"tag": big.pk})),
            ("bulk preview: accept at or above 2.5",
             lambda i=0: get(f"/review/tag/{big.pk}/bulk/preview/?action=accept&threshold=2.5")),
            ("a photo's tags (fragment)", lambda i=0: get(f"/photos/{some_photo}/tags/", **HTMX)),
            ("accept a tag on the photo page (fragment)",
             lambda i=0: post(f"/photos/{big_photos[5000 + i]}/tags/{big.pk}/accept/", {})),
            ("review index: tags with waiting counts (page)", lambda i=0: get("/review/")),
            ("tag list with counts (page)", lambda i=0: get("/tags/")),
        ]
        print(f"machine: {sb.machine(conn)}")
        print(f"{args.photos:,} photos, {rows:,} suggestions over {args.tags:,} tags (loaded in {seconds:.0f} s), "
              f"{args.repeat} repeats; server time through Django's test client\n")
        print(f"{'request':52} {'median ms':>10} {'p95 ms':>8}")
        results = {}
        for label, fn in cases:
            med, p95 = timed(fn, args.repeat, numbered=True)
            results[label] = med
            print(f"{label:52} {med:10.1f} {p95:8.1f}")

        from django.db.models import Count

        def count_links(i=0):  # what the tag list and the inbox did before Postgres kept the counts
            return list(PhotoTag.objects.values_list("tag_id", "state").annotate(n=Count("tag_id")).order_by())

        med, p95 = timed(count_links, max(5, args.repeat // 4), numbered=True)
        print(f"{'baseline: counting every link by tag and state':52} {med:10.1f} {p95:8.1f}")
        print(f"tag list page / counting alone: {results['tag list with counts (page)'] / med:.2f}")

        conn.execute("DROP INDEX phototag_tag_state_score")
        conn.execute("ANALYZE tagging_phototag")
        med, p95 = timed(lambda i=0: get(f"/review/tag/{big.pk}/", **HTMX), max(5, args.repeat // 4), numbered=True)
        indexed = results[cases[0][0]]
        print(f"{'baseline: largest board without the (tag, state, score) index':52} {med:10.1f} {p95:8.1f}")
        print(f"\nwithout index / with index: {med / indexed:.1f}x")
    finally:
        conn.close()
        if not args.keep:
            benchdb.drop(params)


if __name__ == "__main__":
    main()
