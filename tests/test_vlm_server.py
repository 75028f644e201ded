"""The OpenAI backend against a real ``python -m mlx_vlm server`` serving two model families.

The tiny SmolVLM (Idefics3) and the tiny Qwen2.5-VL (``tests.tiny_families``),
each in a server of its own.

The server runs in its own process on 127.0.0.1 (a free port, loopback only)
with an empty, offline Hugging Face cache; it is always terminated in teardown.
Random weights say nothing about content: the tests assert the structure of
what comes back.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagging.availability import ModelUnavailable
from tagging.vlm.base import CaptionRequest
from tagging.vlm.openai_backend import OpenAIBackend
from tests.tiny_families import build_family
from tests.tiny_vlm import build_tiny_smolvlm, synthetic_photo

if importlib.util.find_spec("mlx_vlm") is None:
    pytest.skip('mlx-vlm is not installed here (`pip install "mlx[cpu]" mlx-vlm` on Linux)', allow_module_level=True)

STARTUP_TIMEOUT = 120.0  # seconds: import mlx_vlm (~4 s), load the model, first-run JIT
MAX_TOKENS = 12


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """The tiny SmolVLM folder, built once per test session (shared with the backend tests)."""
    return build_tiny_smolvlm(tmp_path_factory.getbasetemp() / "tiny-smolvlm")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:  # not listening yet
        return False
    finally:
        conn.close()


@pytest.fixture(scope="module", params=["smolvlm", "qwen2_5_vl"])
def served_model(request, tiny_vlm, tmp_path_factory) -> Path:
    """The folder the server serves: each family gets a server of its own."""
    if request.param == "smolvlm":
        return tiny_vlm
    return build_family(request.param, tmp_path_factory.getbasetemp() / f"served-{request.param}")


@pytest.fixture(scope="module")
def mlx_server(served_model, tmp_path_factory):
    """``(base_url, model)`` of a running mlx_vlm server; the process is stopped afterwards."""
    tiny_vlm = served_model
    port = free_port()
    home = tmp_path_factory.mktemp("mlx-server")
    log_path = home / "server.log"
    env = {
        **os.environ,
        "HF_HOME": str(home / "hf"),  # an empty cache: nothing to scan, nothing to fetch
        "HF_HUB_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    command = [
        sys.executable, "-m", "mlx_vlm", "server",
        "--model", str(tiny_vlm), "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not healthy(port):
            if process.poll() is not None:
                pytest.fail(f"mlx_vlm server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"mlx_vlm server not ready after {STARTUP_TIMEOUT:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1", str(tiny_vlm)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_the_server_offers_the_model(mlx_server):
    base_url, model = mlx_server

    OpenAIBackend(base_url, model, timeout=60, retries=0).check_available()


def test_a_caption_comes_back_from_the_server(mlx_server):
    base_url, model = mlx_server
    backend = OpenAIBackend(base_url, model, timeout=60, retries=0, max_tokens=MAX_TOKENS)
    photos = [synthetic_photo(320, 240, seed=0), synthetic_photo(240, 320, seed=1)]

    outputs = backend.caption([CaptionRequest(image=photo, prompt="Describe this photo.") for photo in photos])

    assert len(outputs) == 2
    for output in outputs:
        assert isinstance(output.text, str)
        assert output.prompt_tokens is not None and output.prompt_tokens > 0
        assert output.output_tokens is not None and 0 < output.output_tokens <= MAX_TOKENS
        assert output.latency > 0


def test_a_model_the_server_does_not_have_is_unavailable(mlx_server):
    base_url, _ = mlx_server

    with pytest.raises(ModelUnavailable, match="does not offer it"):
        OpenAIBackend(base_url, "no-such-model", timeout=60, retries=0).check_available()
