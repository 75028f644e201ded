"""`manage.py serve` (the end of `make run`): web + worker + database up, and all down on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from gallery import embedded_postgres

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_web_and_worker_and_ctrl_c_stops_everything(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    env = dict(os.environ, SHOEBOX_DATA_DIR=str(data), SHOEBOX_BIND=f"127.0.0.1:{port}", SHOEBOX_WEB_WORKERS="1")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, timeout=120)
    serve = subprocess.Popen([*manage, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, "the web server answers"
        children = psutil.Process(serve.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "gunicorn" in names and "qcluster" in names
        assert embedded_postgres.status(data / "pg") is not None

        serve.send_signal(signal.SIGINT)  # Ctrl-C
        serve.wait(timeout=40)
        assert serve.returncode == 0
        assert b"Shoebox stopped." in serve.stdout.read()
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left running: {alive}"
        assert embedded_postgres.status(data / "pg") is None, "the database is stopped too"
    finally:
        if serve.poll() is None:
            serve.kill()
        embedded_postgres.stop(data / "pg")
