"""Shared fixtures: real files, the real embedded Postgres, real tools.

Tests that need a system tool (Chromium, exiftool, vipsthumbnail) skip with
a visible reason when it is missing — except on CI (``CI`` set), where a
missing tool is a failure, so nothing is skipped silently there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

# Connections are not kept between requests in tests: a live server thread
# holding one would keep the test database from being dropped.
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
DATA = Path(__file__).resolve().parent / "data"


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian package {package}; `make test` installs it where apt is available)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        message = f"the shared corpus is not at {CORPUS}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CORPUS



@contextlib.contextmanager
def headless_chromium():
    """Debian's Chromium driven by Playwright, closed on the way out (before the live server
    stops: its keep-alive connections hold database sessions), then the connections Django
    opened inside Playwright's event loop closed too."""
    chromium = require_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop; Django must allow ORM calls beside it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            yield browser
        finally:
            browser.close()
    from django.db import connections

    connections.close_all()

# Worker and server processes the tests start inherit this: no faces or OCR stage there
# either, unless a test's environment turns them on.
os.environ.setdefault("SHOEBOX_FACES", "0")
os.environ.setdefault("SHOEBOX_OCR", "0")


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path_factory):
    """Thumbnails in a folder of each test's own, never in ./data; static files without collectstatic.

    The faces and OCR stages are off unless a test turns them on (``people_stages``): their
    real models cost about a second a photo, which the other pipeline tests do not need.
    """
    settings.THUMBNAIL_DIR = tmp_path_factory.mktemp("thumbs")
    settings.GEOCODE = True
    settings.FACES = False
    settings.OCR = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def library_dir(tmp_path, corpus):
    """A fresh library folder; ``add(name, as_=None)`` copies a corpus file into it."""
    root = tmp_path / "photos"
    root.mkdir()

    class Folder:
        path = root

        def add(self, name: str, as_: str | None = None) -> Path:
            dest = root / (as_ or name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(corpus / name, dest)
            return dest

    return Folder()


@pytest.fixture
def library(tmp_path):
    """An empty library named "Family" whose root is a fresh folder."""
    from gallery.models import Library

    root = tmp_path / "lib"
    root.mkdir()
    return Library.objects.create(name="Family", root=str(root))


@pytest.fixture
def sync_tasks(monkeypatch):
    """django-q2 runs tasks in-process (it reads its config once at import)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def probe_stage():
    """A stage registered for one test: it needs thumbnails and does what ``probe.runner`` does."""
    from gallery import stages

    class Probe:
        runner = staticmethod(lambda batch: None)
        batch_size = 10

    stages.register(stages.StageSpec(
        name="probe", order=99, needs=("thumbnail",), runner=lambda batch: Probe.runner(batch),
        batch_size=lambda: Probe.batch_size,
    ))
    yield Probe
    stages.unregister("probe")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("owner", password="pw-owner-123", is_staff=True)


@pytest.fixture
def viewer(django_user_model):
    return django_user_model.objects.create_user("guest", password="pw-guest-123")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def pytest_sessionstart(session):
    """Remember whether the embedded Postgres was already running before the tests."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    session.config._shoebox_pgdata = db.get("OPTIONS_EMBEDDED_PGDATA")
    if session.config._shoebox_pgdata:
        from gallery import embedded_postgres

        session.config._shoebox_pg_was_running = embedded_postgres.status(session.config._shoebox_pgdata) is not None


def pytest_unconfigure(config):
    """Stop the embedded Postgres if the test run started it."""
    pgdata = getattr(config, "_shoebox_pgdata", None)
    if pgdata and not getattr(config, "_shoebox_pg_was_running", True):
        from django.db import connections

        from gallery import embedded_postgres

        connections.close_all()
        embedded_postgres.stop(pgdata)

