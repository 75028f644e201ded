"""The web server under load at 100,000 photos: server CPU per page, saturation throughput, a 20-user soak.

Issue 11's "Scale" section. In one run:

1. **Library** — the synthetic library of ``bench/search_bench.py`` (photos
   with capture times, cameras, places, dated folders, one caption and one
   512-d embedding each, loaded with COPY), plus tags from each scene's words
   (subject and setting accepted on every photo, adjective and activity
   suggested, for the tag and review pages), a *done* row in every stage for
   every photo (so the worker finds nothing to do, as in a library that is
   processed), the search documents and the HNSW index. Thumbnails: a few
   dozen real JPEGs per size (Pillow), hard-linked under every photo's
   thumbnail paths. A staff user signs in the simulated users.
2. **Server** — the real ``manage.py serve`` (what ``make run`` ends with:
   gunicorn with its default workers and threads, and the django-q2 worker),
   on a free port, with ``SHOEBOX_CLIP_MODEL`` pointing at a ViT-B-32 with
   random weights: the real architecture, hence the real cost of encoding
   the search text (the real weights cannot be downloaded here). The model is
   written once into ``<data dir>/models`` and kept (≈ 600 MB). The server's
   cache of search vectors is off (``--query-cache 0``): the bench's 200
   search texts repeat, and each search should pay for its text encoder.
3. **Per page** (grid, a grid page at ≈ 90 % depth, photo page, search with
   and without a year filter, tag page, review inbox, a tag's review board,
   a grid thumbnail): one user without think time for ``--phase-seconds``
   → server CPU per request (the CPU time of the gunicorn processes and of
   the Postgres processes, read with psutil before and after, over the
   requests served); then ``--saturate-users`` users without think time →
   requests/s, and per core (``os.cpu_count()``; the load generator runs on
   the same machine and its share is printed).
4. **Soak** — ``--users`` users (default 20) over all pages with 0.5–1.5 s
   of think time for ``--soak`` seconds: median and p95 per page, and the
   resident memory of the web and worker process trees every 10 s (first,
   last, max, slope).

The load comes from locust (``bench/locustfile.py``, one headless locust
process per phase); each phase waits until its users are signed in and
warmed up, then measures a window of its own. Goals (issue 11): every page
p95 < 100 ms for 20 users (search < 250 ms, with the text encoder), the grid
page < 15 ms of server CPU, memory flat.

Everything runs on an embedded Postgres of its own in ``--data-dir``
(default ``data/bench-load``): ``manage.py serve`` stops its database on the
way out, so the bench must not share the owner's. The database is dropped
and the thumbnails removed at the end unless ``--keep``. Not run by ``make test``.

Run: ``.venv/bin/python bench/load_bench.py [--photos 100000] [--soak 600] [--phase-seconds 30] [--keep]``
(≈ 30 minutes at the defaults; a smoke run: ``--photos 2000 --soak 30 --phase-seconds 5``).
"""

from __future__ import annotations

import os

# Before torch is imported (the random ViT-B-32 is built here once): idle OpenMP threads sleep.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote, urlencode  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_bench as sb  # noqa: E402  (sets DJANGO_SETTINGS_MODULE, names the bench database)

import benchdb  # noqa: E402
import server_usage  # noqa: E402

ROOT = sb.ROOT
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DIM = 512  # ViT-B-32's embedding size
USERNAME = "bench"
PAGES = {  # page kind (bench/locustfile.py) → what the tables call it
    "grid": "grid, first page",
    "grid_deep": "grid page at ~90% depth (htmx)",
    "photo": "photo page",
    "search": "search, text only",
    "search_filtered": "search, text + year filter",
    "tag": "tag page",
    "review": "review inbox",
    "review_tag": "review board of a tag",
    "thumbnail": "grid thumbnail",
}
SEARCH_PAGES = {"search", "search_filtered"}
P95_GOAL_MS = 100.0
SEARCH_P95_GOAL_MS = 250.0  # including the text encoder
GRID_CPU_GOAL_MS = 15.0
PHASE_WARMUP_S = 3.0  # after sign-in, before a phase's window opens
MEMORY_EVERY_S = 10
SOURCE_JPEGS = 48  # distinct thumbnails per size, hard-linked under every photo


# --------------------------------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------------------------------


def random_clip(folder: Path) -> str:
    """A ViT-B-32 with random (seeded) weights as a weights file; returns its ``SHOEBOX_CLIP_MODEL`` spec.

    Written once and kept: the same file gives the same model key, so a kept
    database stays searchable.
    """
    path = folder / "ViT-B-32-random-seed0.safetensors"
    if not path.is_file():
        import open_clip
        import torch
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        part = path.with_name(path.name + ".part")
        save_file({name: t.contiguous() for name, t in model.state_dict().items()}, str(part))
        os.replace(part, path)
    return f"ViT-B-32:{path}"


def load_tags(conn, lib: sb.Synthetic, seed: int = 17) -> int:
    """A tag per scene word; subject and setting accepted on every photo, adjective and activity suggested."""
    from tagging.models import PhotoTag, Tag

    names = sorted({word for words in lib.words for word in words.values()})
    tag_id = {name: i for i, name in enumerate(names, 1)}
    sb.copy_model(conn, Tag, {"id": list(tag_id.values()), "name": names, "path": names,
                              "status": [Tag.Status.ACTIVE] * len(names)})
    conn.execute("SELECT setval(pg_get_serial_sequence('tagging_tag', 'id'), %s)", [len(names)])
    photo_ids, tag_ids, states = [], [], []
    for pk, scene in enumerate(lib.scene_of, 1):
        w = lib.words[scene]
        chosen = {w["subject"]: PhotoTag.State.ACCEPTED, w["setting"]: PhotoTag.State.ACCEPTED,
                  w["adjective"]: PhotoTag.State.SUGGESTED, w["activity"]: PhotoTag.State.SUGGESTED}
        for name, state in chosen.items():
            photo_ids.append(pk)
            tag_ids.append(tag_id[name])
            states.append(state)
    n = len(photo_ids)
    scores = np.random.default_rng(seed).normal(0.5, 1.5, size=n)
    sb.copy_model(conn, PhotoTag, {
        "photo_id": photo_ids, "tag_id": tag_ids, "source": [PhotoTag.Source.CAPTION] * n, "state": states,
        "term": [""] * n, "model": ["transformers:bench"] * n, "prompt_version": ["3"] * n,
        "score": scores.tolist(), "similarity": (0.2 + scores * 0.02).tolist(),
    })
    return n


def mark_processed(conn, photos: int) -> int:
    """A done row in every stage, for the model each stage is configured with: the worker has nothing to do."""
    from gallery import stages
    from gallery.models import PhotoStage

    models = {spec.name: spec.model() for spec in stages.ordered() if not spec.on_demand}
    ids = list(range(1, photos + 1))
    sb.copy_model(conn, PhotoStage, {
        "photo_id": ids * len(models),
        "stage": [name for name in models for _ in ids],
        "model": [model for model in models.values() for _ in ids],
        "state": [PhotoStage.State.DONE] * (len(ids) * len(models)),
    })
    return len(ids) * len(models)


def source_jpegs(folder: Path, size_name: str, long_edge: int, rng: np.random.Generator) -> list[Path]:
    """``SOURCE_JPEGS`` real JPEGs of varied content (smooth colour fields and shapes), landscape and portrait."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(SOURCE_JPEGS):
        w, h = (long_edge, long_edge * 3 // 4) if i % 3 else (long_edge * 3 // 4, long_edge)
        # Drawn at a quarter of the size and scaled up: soft edges, as in a photo, at little cost.
        small = (max(1, w // 4), max(1, h // 4))
        field = Image.fromarray(rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)).resize(small, Image.BICUBIC)
        draw = ImageDraw.Draw(field)
        for _ in range(rng.integers(3, 9)):
            x, y = int(rng.integers(0, small[0])), int(rng.integers(0, small[1]))
            r = int(rng.integers(small[1] // 20 + 1, small[1] // 4 + 2))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        path = folder / f"{size_name}-{i:02d}.jpg"
        field.resize((w, h), Image.BICUBIC).save(path, "JPEG", quality=85)
        paths.append(path)
    return paths


def link_thumbnails(thumb_dir: Path, sources_dir: Path) -> tuple[int, float]:
    """Every photo's thumbnails, as hard links to a few real JPEGs per size; returns (files, KiB per grid JPEG)."""
    from django.conf import settings

    from gallery.models import Photo
    from gallery.thumbnails import thumbnail_path

    for folder in (thumb_dir, sources_dir):
        if folder.exists():
            shutil.rmtree(folder)
    rng = np.random.default_rng(23)
    sources = {name: source_jpegs(sources_dir, name, edge, rng) for name, edge in settings.THUMBNAIL_SIZES.items()}
    made = set()
    files = 0
    for i, content_hash in enumerate(Photo.objects.order_by("pk").values_list("content_hash", flat=True)):
        for name, paths in sources.items():
            path = thumbnail_path(thumb_dir, content_hash, name)
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            os.link(paths[i % len(paths)], path)
            files += 1
    grid_kib = np.mean([p.stat().st_size for p in sources["grid"]]) / 1024
    return files, float(grid_kib)


def create_user() -> str:
    """A staff user (the review pages need staff) with a fresh password; returns the password."""
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(18)
    get_user_model().objects.create_user(USERNAME, password=password, is_staff=True)
    return password


def pick_urls(lib: sb.Synthetic, queries: sb.Queries, seed: int = 29) -> dict[str, list[str]]:
    """URLs per page kind, drawn from the bench database."""
    from django.db.models import Count

    from gallery import browse
    from gallery.models import Photo
    from tagging.models import PhotoTag

    rng = np.random.default_rng(seed)
    n = len(lib.scene_of)
    ordered = Photo.objects.visible().newest_first()
    deep = [ordered[int(n * f)] for f in np.linspace(0.85, 0.95, 10)]
    pks = rng.choice(np.arange(1, n + 1), size=min(n, 500), replace=False).tolist()
    hashes = Photo.objects.filter(pk__in=pks).values_list("content_hash", flat=True)

    def tags_with(state: str) -> list[tuple[int, str]]:
        rows = (PhotoTag.objects.filter(state=state).values("tag_id", "tag__path").annotate(n=Count("id"))
                .order_by("-n"))
        return [(r["tag_id"], r["tag__path"]) for r in rows]

    return {
        "grid": ["/"],
        "grid_deep": [f"/?after={quote(browse.encode_cursor(p))}" for p in deep],
        "photo": [f"/photos/{pk}/" for pk in pks],
        "search": ["/search/?" + urlencode({"q": text}) for text in queries.texts],
        "search_filtered": ["/search/?" + urlencode({"q": f"{text} 2018"}) for text in queries.texts],
        "tag": [f"/tags/{quote(path)}/" for _, path in tags_with(PhotoTag.State.ACCEPTED)],
        "review": ["/review/"],
        "review_tag": [f"/review/tag/{pk}/" for pk, _ in tags_with(PhotoTag.State.SUGGESTED)],
        "thumbnail": [f"/thumbs/{h}/grid.jpg" for h in hashes],
    }


# --------------------------------------------------------------------------------------------------
# The server and the load
# --------------------------------------------------------------------------------------------------


class Server:
    """``manage.py serve`` as a subprocess on a free port, with the bench's environment."""

    def __init__(self, data_dir: Path, pgdata: Path, web_workers: int):
        self.data_dir, self.pgdata, self.web_workers = data_dir, pgdata, web_workers
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "serve.log"
        self.url = ""
        self.pids: dict[str, int] = {}

    def start(self, timeout: float = 300) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}",
                 "--web-workers", str(self.web_workers)],
                cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"manage.py serve exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/accounts/login/", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"manage.py serve did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)
        self.pids = server_usage.server_pids(self.proc.pid, self.pgdata)

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C would: serve stops gunicorn and the worker, then the database."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its children die with it (parent-death signal)
            self.proc.wait()

    def settle(self, quiet: float = 0.1, timeout: float = 60) -> None:
        """Wait until the web and database use under ``quiet`` of a core: the last phase's queued requests are done."""
        deadline = time.monotonic() + timeout
        before = server_usage.cpu_by_part(self.pids)
        while time.monotonic() < deadline:
            time.sleep(1.0)
            after = server_usage.cpu_by_part(self.pids)
            if after["web"] + after["db"] - before["web"] - before["db"] < quiet:
                return
            before = after

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Load:
    """Runs locust phases against the server; each phase is one headless locust process."""

    def __init__(self, server: Server, urls: dict[str, list[str]], password: str):
        self.server, self.urls, self.password = server, urls, password
        self.plan_path = server.data_dir / "load-plan.json"  # holds the password: removed at the end
        self.out_path = server.data_dir / "load-result.json"
        self.log_path = server.data_dir / "locust.log"

    def run(self, pages: list[str], users: int, seconds: float, *, think: tuple[float, float] | None = None,
            warmup: float = PHASE_WARMUP_S, memory_every: int = 0) -> dict:
        plan = {
            "pages": pages, "urls": {kind: self.urls[kind] for kind in pages},
            "username": USERNAME, "password": self.password, "users": users,
            "think": list(think) if think else None, "warmup": warmup, "seconds": seconds,
            "pids": self.server.pids, "memory_every": memory_every, "out": str(self.out_path),
        }
        self.plan_path.touch(mode=0o600)
        self.plan_path.write_text(json.dumps(plan))
        self.out_path.unlink(missing_ok=True)
        self.server.settle()
        limit = int(warmup + seconds + 240)  # sign-ins included; the locust file stops itself before
        cmd = [str(Path(sys.executable).with_name("locust")), "-f", str(LOCUSTFILE), "--headless",
               "-u", str(users), "-r", str(users), "--host", self.server.url, "--run-time", f"{limit}s",
               "--only-summary", "--loglevel", "WARNING"]
        with open(self.log_path, "wb") as log:
            proc = subprocess.run(cmd, env=dict(os.environ, LOAD_BENCH_PLAN=str(self.plan_path)), stdout=log,
                                  stderr=subprocess.STDOUT, timeout=limit + 60, check=False)
        if not self.out_path.exists():
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"locust (status {proc.returncode}) wrote no result:\n{tail}")
        result = json.loads(self.out_path.read_text())
        if "error" in result:
            raise RuntimeError(f"locust phase failed: {result['error']}\nserver log:\n{self.server.log_tail()}")
        return result

    def clean(self) -> None:
        self.plan_path.unlink(missing_ok=True)
        self.out_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def page_figures(result: dict, kind: str) -> dict:
    """Throughput, latency (median, p95 ms) and server CPU per request of one page kind in one phase."""
    times = result["times_ms"][kind]
    n = len(times)
    med, p95 = sb.ms_stats(np.asarray(times) / 1000) if n else (float("nan"), float("nan"))
    cpu = result["cpu"]
    server = cpu["web"] + cpu["db"]
    return {
        "n": n, "failures": result["failures"].get(kind, 0), "rps": n / result["seconds"], "median": med,
        "p95": p95, "web_ms": 1000 * cpu["web"] / max(n, 1), "db_ms": 1000 * cpu["db"] / max(n, 1),
        "cpu_ms": 1000 * server / max(n, 1),
        "server_share": server / result["seconds"] / (os.cpu_count() or 1),
        "locust_share": result["locust_cpu"] / result["seconds"] / (os.cpu_count() or 1),
    }


def memory_line(label: str, samples: list[dict], part: str, soak_s: float) -> str:
    t = np.array([s["t"] for s in samples]) / 60
    rss = np.array([s[part] for s in samples])
    if len(samples) < 3:
        return f"  {label:<34} {rss[0]:8.0f} {rss[-1]:8.0f} {rss.max():8.0f}   (too few samples for a slope)"
    slope = float(np.polyfit(t, rss, 1)[0])
    growth = slope * soak_s / 60
    flat = "flat" if abs(growth) < max(5.0, 0.01 * rss[0]) else "GROWS" if growth > 0 else "shrinks"
    return (f"  {label:<34} {rss[0]:8.0f} {rss[-1]:8.0f} {rss.max():8.0f} {slope:+9.2f}   "
            f"{growth:+7.1f} MiB over the soak: {flat}")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_errors(results: list[dict]) -> None:
    errors: dict[str, int] = {}
    for r in results:
        for text, count in r["errors"].items():
            errors[text] = errors.get(text, 0) + count
    if errors:
        print("\nfailed requests (most common):")
        for text, count in sorted(errors.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {count:6d}  {text}")


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--soak", type=float, default=600, help="seconds of the soak (default 600)")
    parser.add_argument("--phase-seconds", type=float, default=30,
                        help="measured seconds of each per-page phase (default 30)")
    parser.add_argument("--users", type=int, default=20, help="simulated users in the soak (default 20)")
    parser.add_argument("--saturate-users", type=int, default=16,
                        help="users without think time in the saturation phase (default 16)")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("SHOEBOX_WEB_WORKERS", "2")),
                        help="gunicorn workers (default: SHOEBOX_WEB_WORKERS, else 2, as `make run`)")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help=f"page kinds to measure, comma-separated (default all: {','.join(PAGES)})")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench-load",
                        help="SHOEBOX_DATA_DIR of the bench: its own Postgres, thumbnails, the random model")
    parser.add_argument("--keep", action="store_true", help="keep the database and thumbnails")
    parser.add_argument("--query-cache", type=int, default=0,
                        help="SHOEBOX_QUERY_CACHE of the server (default 0: the bench's 200 search texts "
                             "repeat, so every search encodes its text, as a new search does)")
    args = parser.parse_args()
    pages = [p for p in args.pages.split(",") if p]
    unknown = set(pages) - set(PAGES)
    if unknown:
        parser.error(f"unknown page kinds {sorted(unknown)}; choose from {','.join(PAGES)}")

    started = time.perf_counter()
    # The server reads its settings from the environment: the bench's data dir, database and model.
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("DATABASE_URL", "SHOEBOX_REDIS_URL"):
        os.environ.pop(name, None)  # the bench's own embedded server and ORM broker
    os.environ.update({
        "SHOEBOX_DATA_DIR": str(data_dir), "SHOEBOX_THUMBNAIL_DIR": str(data_dir / "thumbs"),
        "SHOEBOX_OFFLINE": "true", "SHOEBOX_QUERY_CACHE": str(args.query_cache),
    })
    t = time.perf_counter()
    os.environ["SHOEBOX_CLIP_MODEL"] = random_clip(data_dir / "models")
    model_s = time.perf_counter() - t

    t = time.perf_counter()
    lib = sb.make_library(args.photos, DIM, max(10, args.photos // 100))
    queries = sb.make_queries(lib, 200)
    print(f"generated {args.photos:,} photos × {DIM}-d in {time.perf_counter() - t:.1f}s")
    params = benchdb.create()
    conn = sb.bench_connection(params)
    from django.conf import settings
    from django.db import connections

    from gallery import embedded_postgres

    pgdata = Path(settings.DATABASES["default"]["OPTIONS_EMBEDDED_PGDATA"])
    server = Server(data_dir, pgdata, args.web_workers)
    load = None
    try:
        from tagging import clip, documents, vectors

        model_key = clip.ClipSpec.parse(settings.CLIP_MODEL).key
        print(f"machine: {sb.machine(conn)}")
        steps = [("random ViT-B-32 (written once, then reused)", model_s)]
        t = time.perf_counter()
        rows = sum(r for _, r, _ in sb.load_library(conn, lib, model_key))
        steps.append((f"photos, files, captions, embeddings ({rows:,} rows)", time.perf_counter() - t))
        t = time.perf_counter()
        rows = load_tags(conn, lib)
        steps.append((f"tags ({rows:,} photo tags)", time.perf_counter() - t))
        t = time.perf_counter()
        rows = mark_processed(conn, args.photos)
        steps.append((f"stage rows, all done ({rows:,})", time.perf_counter() - t))
        t = time.perf_counter()
        documents.refresh_all()
        conn.execute("VACUUM ANALYZE")
        steps.append(("search documents, VACUUM ANALYZE", time.perf_counter() - t))
        t = time.perf_counter()
        vectors.ensure_index(model_key, DIM)
        steps.append(("HNSW index", time.perf_counter() - t))
        t = time.perf_counter()
        files, kib = link_thumbnails(Path(settings.THUMBNAIL_DIR), data_dir / "thumb-sources")
        steps.append((f"thumbnails ({files:,} hard links, grid JPEGs ≈ {kib:.0f} KiB)", time.perf_counter() - t))
        password = create_user()
        urls = pick_urls(lib, queries)
        conn.close()
        connections.close_all()  # the bench holds no connection while the server is measured

        t = time.perf_counter()
        server.start()
        steps.append((f"manage.py serve answers ({args.web_workers} web workers)", time.perf_counter() - t))
        print("\nsetup                                                         seconds")
        for label, secs in steps:
            print(f"  {label:<60} {secs:7.1f}")
        sys.stdout.flush()

        load = Load(server, urls, password)
        # Warm-up: every page from several users, so that every web worker has loaded the CLIP model.
        warm = load.run(pages, args.saturate_users, max(20.0, args.phase_seconds))
        broken = [kind for kind in pages if 0 < warm["failures"].get(kind, 0) == len(warm["times_ms"][kind])]
        if broken:
            print_errors([warm])
            raise RuntimeError(f"every request of {', '.join(broken)} failed in the warm-up")
        idle_s = min(10.0, args.phase_seconds)
        server.settle()
        before = server_usage.cpu_by_part(server.pids)
        time.sleep(idle_s)
        after = server_usage.cpu_by_part(server.pids)
        idle = {name: 1000 * (after[name] - before[name]) / idle_s for name in before}

        cores = os.cpu_count() or 1
        print(f"\nper page: {args.phase_seconds:.0f} s each after sign-in and a {PHASE_WARMUP_S:.0f} s warm-up; "
              f"{cores} cores; idle server: web {idle['web']:.1f}, database {idle['db']:.1f}, "
              f"worker {idle['worker']:.1f} CPU ms/s")
        print(f"  {'':<32} {'1 user, no think time':^38} | "
              f"{str(args.saturate_users) + ' users, no think time (saturation)':^58}")
        print(f"  {'page':<32} {'req/s':>6} {'median':>7} {'CPU ms/req: web':>15} {'db':>5} {'total':>6} | "
              f"{'req/s':>6} {'/core':>6} {'median':>7} {'p95':>7} {'server CPU':>10} {'locust':>7} {'failed':>6}")
        results = [warm]
        per_page = {}
        for kind in pages:
            one = load.run([kind], 1, args.phase_seconds)
            sat = load.run([kind], args.saturate_users, args.phase_seconds)
            results += [one, sat]
            a, b = page_figures(one, kind), page_figures(sat, kind)
            per_page[kind] = a
            print(f"  {PAGES[kind]:<32} {a['rps']:6.1f} {a['median']:7.1f} {a['web_ms']:15.1f} {a['db_ms']:5.1f} "
                  f"{a['cpu_ms']:6.1f} | {b['rps']:6.1f} {b['rps'] / cores:6.1f} {b['median']:7.1f} "
                  f"{b['p95']:7.1f} {b['server_share']:10.0%} {b['locust_share']:7.0%} "
                  f"{a['failures'] + b['failures']:6d}")
            sys.stdout.flush()
        print("  (median, p95: ms at the client; server CPU: gunicorn + Postgres as a share of all cores; "
              "locust: the load generator's share)")
        if "grid" in per_page:
            g = per_page["grid"]["cpu_ms"]
            print(f"  goal: grid page < {GRID_CPU_GOAL_MS:.0f} ms of server CPU: {g:.1f} ms, "
                  f"{verdict(g < GRID_CPU_GOAL_MS)}")

        soak = load.run(pages, args.users, args.soak, think=(0.5, 1.5), warmup=10, memory_every=MEMORY_EVERY_S)
        results.append(soak)
        total = sum(len(soak["times_ms"][k]) for k in pages)
        share = (soak["cpu"]["web"] + soak["cpu"]["db"]) / soak["seconds"] / cores
        print(f"\nsoak: {args.users} users, 0.5–1.5 s think time, all pages equally often, {soak['seconds']:.0f} s: "
              f"{total / soak['seconds']:.1f} req/s, server CPU {share:.0%} of {cores} cores")
        print(f"  {'page':<32} {'requests':>8} {'failed':>6} {'median ms':>9} {'p95 ms':>7}   goal")
        for kind in pages:
            f = page_figures(soak, kind)
            goal = SEARCH_P95_GOAL_MS if kind in SEARCH_PAGES else P95_GOAL_MS
            print(f"  {PAGES[kind]:<32} {f['n']:8d} {f['failures']:6d} {f['median']:9.1f} {f['p95']:7.1f}   "
                  f"p95 < {goal:.0f} ms: {verdict(f['p95'] < goal)}")
        if soak["memory"]:
            print(f"\nmemory over the soak (RSS of each process tree, MiB, every {MEMORY_EVERY_S} s; "
                  f"{len(soak['memory'])} samples)")
            print(f"  {'':<34} {'first':>8} {'last':>8} {'max':>8} {'MiB/min':>9}")
            print(memory_line(f"web (gunicorn, {args.web_workers} workers)", soak["memory"], "web", soak["seconds"]))
            print(memory_line("worker (qcluster)", soak["memory"], "worker", soak["seconds"]))
        print_errors(results)
        print(f"\nran in {(time.perf_counter() - started) / 60:.1f} minutes")
    finally:
        if load is not None:
            load.clean()
        conn.close()
        connections.close_all()
        if args.keep:
            print(f"\nkept database {sb.DB_NAME} and the thumbnails in {data_dir}; serve it with "
                  f"SHOEBOX_DATA_DIR={data_dir} SHOEBOX_DB_NAME={sb.DB_NAME} "
                  f"SHOEBOX_CLIP_MODEL={os.environ['SHOEBOX_CLIP_MODEL']} .venv/bin/python manage.py serve "
                  f"(user {USERNAME}: set a password with manage.py changepassword {USERNAME})")
        else:
            # Before the server stops: serve stops the database on its way out, and this process
            # cannot start it again (embedded_postgres remembers it as started). FORCE ends the
            # server's connections; it is stopped next.
            benchdb.drop(params)
            for folder in (Path(settings.THUMBNAIL_DIR), data_dir / "thumb-sources"):
                shutil.rmtree(folder, ignore_errors=True)
        server.stop()  # stops the embedded Postgres too
        embedded_postgres.stop(pgdata)  # when the server never started


if __name__ == "__main__":
    main()
