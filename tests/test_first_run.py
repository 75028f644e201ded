"""The first `make run`: missing default models are fetched before starting, unless offline or unreachable.

``make run`` calls ``manage.py models pull --if-online``. The hub here is a real
local HTTP server standing in for huggingface.co (``HF_ENDPOINT``), so the
tests see exactly which requests a start makes; nothing here can reach the
real hub.
"""

from __future__ import annotations

import http.server
import socket
import threading
from io import StringIO

import pytest
from django.core.management import call_command

from tests.tiny_clip import build_tiny_clip

MISSING_CLIP = "hf-hub:shoebox-tests/no-such-clip"


class Hub(http.server.ThreadingHTTPServer):
    """Answers the reachability probe; has no models (every file is a 404). Counts requests."""

    def __init__(self):
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                hub.requests.append(f"{self.command} {self.path}")
                self.send_response(200 if self.path.startswith("/api/models") else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _answer

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def hub(monkeypatch):
    server = Hub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.shutdown()


@pytest.fixture
def missing_models(settings, tmp_path, monkeypatch):
    """A configured CLIP model that is not on disk; captions from a server (nothing to fetch)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    settings.CLIP_MODEL = MISSING_CLIP
    settings.CAPTION_BACKEND = "openai"
    settings.OFFLINE = False


def start(**kwargs) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("models", "pull", "--if-online", stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def test_offline_says_what_waits_and_makes_no_request(hub, missing_models, settings):
    settings.OFFLINE = True
    out, err = start()
    assert "SHOEBOX_OFFLINE is set: not downloading" in err
    assert MISSING_CLIP in err
    assert hub.requests == []


def test_an_unreachable_hub_is_said_once_and_the_start_goes_on(missing_models, monkeypatch):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    out, err = start()  # returns: never fails the start
    assert err.count("cannot be reached") == 1
    assert "starting without" in err and MISSING_CLIP in err
    assert out == ""


def test_with_the_hub_reachable_the_missing_models_are_pulled_and_a_failure_does_not_stop_the_start(
        hub, missing_models, settings, tmp_path):
    # A model that cannot be fetched (a folder that is not here): the pull is tried, fails, is said.
    settings.CLIP_MODEL = f"local-dir:{tmp_path}/copied-from-elsewhere"
    out, err = start()
    assert "Downloading the missing models" in err
    assert f"local-dir:{tmp_path}/copied-from-elsewhere: FAILED" in out
    assert hub.requests == ["HEAD /api/models?limit=1"], "one probe, then the pull"


def test_with_every_model_present_nothing_is_said_or_asked(hub, settings, tmp_path):
    settings.CLIP_MODEL = build_tiny_clip(tmp_path / "clip", seed=5)
    settings.CAPTION_BACKEND = "openai"
    out, err = start()
    assert (out, err) == ("", "")
    assert hub.requests == []
