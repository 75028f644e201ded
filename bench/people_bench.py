"""People pages and naming at 100,000 photos and 150,000 faces: every request's server time.

Loads the synthetic library of ``bench/search_bench.py`` (COPY), then faces
(1.5 per photo) grouped into persons the way clustering leaves them: a few
hundred named people, and many unnamed groups of Zipf-like sizes (the largest
has hundreds of faces, most have one or two). Then drives the real views
through Django's test client as a signed-in staff user (routing, middleware,
sessions, CSRF, templates: the whole server side of a request): the People
page, a person's page, the "who is this?" board, naming a group (its photos'
search documents rebuilt in the same request), merging, moving a face out,
name completion, and ``person:`` / ``has:faces`` searches. Baseline in the
same run: the queue's board without the ``person_listing`` index.

Run: ``.venv/bin/python bench/people_bench.py [--photos 100000] [--persons 20000] [--named 300] [--repeat 10]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_bench as sb  # noqa: E402

sb.DB_NAME = "shoebox_people_bench"  # a database of its own (before Django reads its settings)
os.environ["SHOEBOX_DB_NAME"] = sb.DB_NAME

import benchdb  # noqa: E402
from measure import timed  # noqa: E402

HTMX = {"HTTP_HX_REQUEST": "true"}


def load_people(conn, photos: int, n_persons: int, named: int, per_photo: float, seed: int = 9) -> tuple[int, float]:
    """Persons 1..n_persons (the first ``named`` with names) and faces spread over them; (faces, seconds)."""
    from people.models import Face, Person

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    n_faces = int(photos * per_photo)
    weights = 1.0 / np.arange(1, n_persons + 1) ** 1.1
    weights /= weights.sum()
    owner = rng.choice(n_persons, size=n_faces, p=weights) + 1
    counts = np.bincount(owner, minlength=n_persons + 1)
    # The biggest groups are the family: named. The rest stay unnamed clusters.
    names = [f"Person {i:05d}" if i <= named else "" for i in range(1, n_persons + 1)]
    sb.copy_model(conn, Person, {"id": list(range(1, n_persons + 1)), "name": names,
                                 "face_count": counts[1:].tolist()})
    photo_of = rng.integers(1, photos + 1, size=n_faces)
    x, y = rng.uniform(0, 0.8, size=n_faces), rng.uniform(0, 0.7, size=n_faces)
    sb.copy_model(conn, Face, {
        "id": list(range(1, n_faces + 1)), "photo_id": photo_of.tolist(), "person_id": owner.tolist(),
        "x": x.tolist(), "y": y.tolist(), "w": [0.12] * n_faces, "h": [0.16] * n_faces,
        "size": rng.integers(40, 400, size=n_faces).tolist(), "detector": ["hog"] * n_faces,
        "locked": [bool(i <= named) for i in owner.tolist()],
    })
    conn.execute("SELECT setval('people_person_id_seq', %s)", [n_persons])
    conn.execute("SELECT setval('people_face_id_seq', %s)", [n_faces])
    conn.execute("UPDATE people_person p SET cover_id = f.first FROM (SELECT person_id, min(id) AS first "
                 "FROM people_face GROUP BY person_id) f WHERE f.person_id = p.id")  # one pass, not one per person
    return n_faces, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--named", type=int, default=300)
    parser.add_argument("--faces-per-photo", type=float, default=1.5)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    lib = sb.make_library(args.photos, 32, max(10, args.photos // 100))
    params = benchdb.create()
    conn = sb.bench_connection(params)
    try:
        sb.load_library(conn, lib, "people-bench")
        n_faces, seconds = load_people(conn, args.photos, args.persons, args.named, args.faces_per_photo)
        from tagging import documents

        t = time.perf_counter()
        documents.refresh_all()  # names in every document, as after a scan
        docs_seconds = time.perf_counter() - t
        conn.execute("VACUUM ANALYZE")

        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client
        from django.test.utils import override_settings

        from people import naming
        from people.models import Face, Person

        override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
        staff = get_user_model().objects.create_user("bench", password="bench-password-1", is_staff=True)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(staff)

        def get(url, data=None, **extra):
            response = client.get(url, data, **extra)
            assert response.status_code == 200, (url, response.status_code)

        def post(url, data, status=200):
            response = client.post(url, data, **HTMX)
            assert response.status_code == status, (url, response.status_code, response.content[:300])

        top = Person.objects.get(pk=1)
        queue = list(naming.unnamed_clusters()[: 4 * args.repeat + 8])
        mid_named = Person.objects.get(pk=args.named // 2)
        faces_of = {p.pk: list(Face.objects.filter(person=p).values_list("pk", flat=True)[:50])
                    for p in queue[2 * args.repeat + 4:]}
        movable = [pk for p in queue[2 * args.repeat + 4:] for pk in faces_of[p.pk][:1]]

        cases = [
            (f"People page ({args.named} named + the 120 largest groups)", lambda i: get("/people/")),
            (f"a person's page, the largest ({top.face_count:,} faces)", lambda i: get(f"/people/{top.pk}/")),
            (f"the queue's board, largest group ({queue[0].face_count} faces)",
             lambda i: get(f"/review/people/{queue[0].pk}/", **HTMX)),
            ("name a group from the queue (next board + documents)",
             lambda i: post(f"/people/{queue[i].pk}/name/", {"name": f"Bench Name {i}", "review": "1"})),
            ("a group's name matches someone: merge into them",
             lambda i: post(f"/people/{queue[args.repeat + 2 + i].pk}/name/",
                            {"name": mid_named.name.upper(), "review": "1"})),
            ("take one face out of a group (queue board)",
             lambda i: post(f"/people/{Face.objects.get(pk=movable[i]).person_id}/faces/move/",
                            {"face": movable[i], "action": "remove", "review": "1"})),
            ("name completion for 'person 01'", lambda i: get("/people/names/", {"name": "person 01"}, **HTMX)),
            (f"search person:\"{mid_named.name}\"", lambda i: get("/search/", {"q": f'person:"{mid_named.name}"'}, **HTMX)),
            ("search has:faces", lambda i: get("/search/", {"q": "has:faces"}, **HTMX)),
            (f"search the name typed: {mid_named.name.lower()}",
             lambda i: get("/search/", {"q": mid_named.name.lower()}, **HTMX)),
        ]
        print(f"machine: {sb.machine(conn)}")
        print(f"{args.photos:,} photos, {n_faces:,} faces in {args.persons:,} persons ({args.named} named), "
              f"loaded in {seconds:.0f} s; every search document rebuilt in {docs_seconds:.0f} s; "
              f"{args.repeat} repeats; server time through Django's test client\n")
        print(f"{'request':58} {'median ms':>10} {'p95 ms':>8}")
        results = {}
        for label, fn in cases:
            med, p95 = timed(fn, args.repeat, numbered=True)
            results[label] = med
            print(f"{label:58} {med:10.1f} {p95:8.1f}")

        board = cases[2]
        conn.execute("DROP INDEX person_listing")
        conn.execute("ANALYZE people_person")
        med, p95 = timed(board[1], args.repeat, numbered=True)
        print(f"{'baseline: the board without the person_listing index':58} {med:10.1f} {p95:8.1f}")
        print(f"\nwithout index / with index: {med / results[board[0]]:.1f}x")
    finally:
        conn.close()
        if not args.keep:
            benchdb.drop(params)


if __name__ == "__main__":
    main()
