"""The engine under real django-q2 workers: timeouts, SIGKILL and two workers at once.

Each test starts real ``manage.py qcluster`` processes against the test
database (committed data: ``transaction=True``), a tiny CLIP model built
offline, and a real OpenAI-compatible HTTP server (``FakeVLMServer``) as the
caption backend, so that every model call is counted.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from PIL import Image

from gallery import libraries, scans
from gallery.models import PhotoStage
from tagging.models import Caption, Embedding
from tests.fake_vlm_server import FakeVLMServer, Reply, caption_reply, GOOD_CAPTION
from tests.tiny_clip import build_tiny_clip

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2.5vl:3b"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("worker-clip") / "clip", seed=3)


def make_library(folder: Path, n: int, *, seed: int = 0):
    """``n`` small JPEGs, each different (random noise), as a library, scanned; thumbnails queued."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:04d}.jpg", quality=80)
    library, _ = libraries.add_library(str(folder))
    report = scans.import_library(library)
    assert report.totals["imported"] == n
    return library


class Cluster:
    """One ``manage.py qcluster`` (its own process group) with the given settings."""

    def __init__(self, env: dict, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"], env=env, cwd=ROOT,
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL to every process of the cluster (what the OOM killer or a container stop does)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def worker_env(tiny_clip, settings):
    """The workers' environment; this process's settings say the same models (rows record them)."""
    settings.CLIP_MODEL = tiny_clip
    settings.CAPTION_BACKEND = "openai"
    settings.CAPTION_MODEL = MODEL

    def make(server: FakeVLMServer, **overrides) -> dict:
        env = dict(
            os.environ,
            SHOEBOX_DATA_DIR=str(settings.DATA_DIR),
            SHOEBOX_DB_NAME=connection.settings_dict["NAME"],
            SHOEBOX_THUMBNAIL_DIR=str(settings.THUMBNAIL_DIR),
            SHOEBOX_CLIP_MODEL=tiny_clip,
            SHOEBOX_CAPTION_BACKEND="openai",
            SHOEBOX_OPENAI_BASE_URL=server.url,
            SHOEBOX_OPENAI_MODEL=MODEL,
            SHOEBOX_OPENAI_RETRIES="0",
            SHOEBOX_GEOCODE="false",
            SHOEBOX_QUEUE_POLL="0.2",
            SHOEBOX_WORKERS="1",
            SHOEBOX_WORKER_THREADS="1",
            SHOEBOX_LOG_LEVEL="INFO",
            OMP_WAIT_POLICY="PASSIVE",
            OMP_NUM_THREADS="1",
            # Full descriptions only on demand, unless a test turns them on: these tests count first passes.
            SHOEBOX_FULL_CAPTIONS_PER_HOUR="0",
        )
        env.update({k: str(v) for k, v in overrides.items()})
        # This process judges when the work is over (``settled``) by the workers' pace.
        settings.FULL_CAPTIONS_PER_HOUR = int(env["SHOEBOX_FULL_CAPTIONS_PER_HOUR"])
        return env

    return make


@pytest.fixture
def clusters(tmp_path):
    started: list[Cluster] = []

    def start(env: dict) -> Cluster:
        cluster = Cluster(env, tmp_path / f"cluster-{len(started)}.log")
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()


def wait_for(condition, *, seconds: float, clusters=(), what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    logs = "\n".join(c.tail() for c in clusters)
    states = sorted(Counter(PhotoStage.objects.values_list("stage", "state")).items())
    pytest.fail(f"gave up waiting for {what} after {seconds} s; stages: {states}\n{logs}")


def settled() -> bool:
    """Nothing queued or running, nothing ready and pending (full descriptions too, while their pace lets them
    run), nothing waiting as *unavailable*.

    A loaded machine can make the fake server miss the backend's quick availability check: the
    batch then waits as unavailable (no attempt used) until the once-a-minute tick retries it.
    That is the product working; the tests wait for the work itself to end.
    """
    from gallery import engine

    return not engine.has_work() and not PhotoStage.objects.filter(state=PhotoStage.State.UNAVAILABLE).exists()


def image_digests(server: FakeVLMServer, *, full: bool = False) -> list[str]:
    """One digest per chat request of the first pass (``full``: of the full description): which photo the
    model was shown."""
    digests = []
    for request in server.chat_requests():
        content = request.json["messages"][-1]["content"]
        if ('"description"' in content[0]["text"]) != full:
            continue
        url = next(part["image_url"]["url"] for part in content if part.get("type") == "image_url")
        digests.append(hashlib.sha256(url.encode()).hexdigest())
    return digests


def test_captions_that_time_out_are_retried_then_failed_while_embeddings_finish(
        tmp_path, worker_env, clusters, staff_client):
    make_library(tmp_path / "photos", 2)
    with FakeVLMServer(models=[MODEL]) as server:
        server.default = Reply(body=caption_reply(GOOD_CAPTION).body, delay=600)  # never answers in time
        cluster = clusters(worker_env(
            server, SHOEBOX_TASK_TIMEOUT=60, SHOEBOX_TASK_RETRY=90, SHOEBOX_CAPTION_TIMEOUT=3,
            SHOEBOX_TASK_MAX_ATTEMPTS=2, SHOEBOX_OPENAI_TIMEOUT=600,
        ))
        wait_for(settled, seconds=150, clusters=[cluster], what="the worker to finish")
        calls = len(server.chat_requests())

    embeddings = PhotoStage.objects.filter(stage="embedding")
    assert set(embeddings.values_list("state", "attempts")) == {("done", 1)}
    assert Embedding.objects.count() == 2
    for row in PhotoStage.objects.filter(stage="caption"):
        assert (row.state, row.attempts) == ("failed", 2), row.error
        assert row.error == "timed out after 3 s (gave up after 2 attempts)"
    assert calls == 4, "each photo was tried twice"
    assert not Caption.objects.exists()
    assert not PhotoStage.objects.filter(state__in=["running", "queued", "pending"]).exists()
    response = staff_client.get("/jobs/?poll=1", HTTP_HX_REQUEST="true")
    assert response.status_code == 286, "the jobs page stops polling"
    html = staff_client.get("/jobs/").content.decode()
    assert "timed out after 3 s (gave up after 2 attempts)" in html and "Retry failed" in html


def test_a_worker_killed_mid_batch_and_restarted_leaves_every_photo_done_exactly_once(
        tmp_path, worker_env, clusters):
    n = 6
    make_library(tmp_path / "photos", n, seed=1)
    with FakeVLMServer(models=[MODEL]) as server:
        server.default = Reply(body=caption_reply(GOOD_CAPTION).body, delay=1.0)
        env = worker_env(server, SHOEBOX_TASK_TIMEOUT=20, SHOEBOX_TASK_RETRY=25)
        first = clusters(env)
        wait_for(lambda: PhotoStage.objects.filter(stage="caption", state="running").exists(),
                 seconds=90, clusters=[first], what="a caption to be under way")
        victim = PhotoStage.objects.get(stage="caption", state="running")
        first.kill()
        assert PhotoStage.objects.get(pk=victim.pk).state == "running", "killed while holding it"

        second = clusters(env)
        wait_for(settled, seconds=120, clusters=[first, second], what="the restarted worker to finish")
        digests = image_digests(server)

    assert set(PhotoStage.objects.exclude(stage="description").values_list("state", flat=True)) == {"done"}
    assert set(PhotoStage.objects.filter(stage="description").values_list("state", flat=True)) == {"pending"}, \
        "full descriptions wait: only on demand here"
    assert Embedding.objects.count() == n and Caption.objects.count() == n
    assert sorted(Counter(Caption.objects.values_list("photo_id", flat=True)).values()) == [1] * n
    victim.refresh_from_db()
    assert victim.attempts == 2 and victim.state == "done"
    # Every photo was shown to the model once, but the victim twice if the kill cut its call off
    # (the kill may also land before that call was sent).
    assert len(set(digests)) == n and len(digests) in (n, n + 1)
    assert Counter(digests).most_common(1)[0][1] <= 2


def test_two_workers_process_every_photo_once(tmp_path, worker_env, clusters):
    """Both passes: the first for every photo, then (idle, a batch at a time) one full description per
    near-duplicate group, the rest reused."""
    n = 200
    make_library(tmp_path / "photos", n, seed=2)
    with FakeVLMServer(models=[MODEL]) as server:
        env = worker_env(server, SHOEBOX_OPENAI_CONCURRENCY=4, SHOEBOX_TASK_TIMEOUT=120, SHOEBOX_TASK_RETRY=150,
                         SHOEBOX_FULL_CAPTIONS_PER_HOUR=100000)
        workers = [clusters(env), clusters(env)]
        wait_for(settled, seconds=300, clusters=workers, what="two workers to finish")
        digests, full = image_digests(server), image_digests(server, full=True)

    errors = set(PhotoStage.objects.exclude(state="done").values_list("stage", "error"))
    assert set(PhotoStage.objects.values_list("state", "attempts")) == {("done", 1)}, f"no attempt wasted {errors}"
    assert Embedding.objects.count() == n and Caption.objects.filter(caption_pass="first").count() == n
    assert len(digests) == n and len(set(digests)) == n, "each photo shown to the first pass exactly once"
    described = Caption.objects.filter(caption_pass="full", source__isnull=True).count()
    assert Caption.objects.filter(caption_pass="full").count() == n, "every photo has a full description"
    assert len(full) == len(set(full)) == described, "and each scene was described once"


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server on a free local port, for this test only."""
    import socket

    from tests.conftest import require_tool

    server = require_tool("redis-server", "redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_two_workers_over_a_redis_broker_process_every_photo_once(tmp_path, worker_env, clusters, redis_url,
                                                                  monkeypatch):
    """Scale-out: workers that share one Postgres and take their tasks from Redis lose and repeat nothing."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)  # this process hands its tasks to Redis too
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    n = 60
    make_library(tmp_path / "photos", n, seed=4)
    with FakeVLMServer(models=[MODEL]) as server:
        env = worker_env(server, SHOEBOX_REDIS_URL=redis_url, SHOEBOX_OPENAI_CONCURRENCY=4,
                         SHOEBOX_TASK_TIMEOUT=120, SHOEBOX_TASK_RETRY=150)
        workers = [clusters(env), clusters(env)]
        wait_for(settled, seconds=240, clusters=workers, what="two workers on Redis to finish")
        digests = image_digests(server)

    errors = set(PhotoStage.objects.exclude(state="done").exclude(stage="description").values_list("stage", "error"))
    first = PhotoStage.objects.exclude(stage="description")
    assert set(first.values_list("state", "attempts")) == {("done", 1)}, errors
    assert Embedding.objects.count() == n and Caption.objects.count() == n
    assert len(digests) == n and len(set(digests)) == n
