"""`manage.py serve` (the end of `make run`): web + worker + database up, and all down on Ctrl-C.

Also what a self-hosted server meets: the supervisor killed outright (``kill -9``, the OOM
killer, a container stop), and ``make run`` started a second time.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from gallery import embedded_postgres, supervisor

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data: Path, port: int) -> dict[str, str]:
    """The environment of a Shoebox of its own: its data dir (and embedded Postgres), its port."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SHOEBOX_DB_NAME", "SHOEBOX_THUMBNAIL_DIR")}
    env.update(SHOEBOX_DATA_DIR=str(data), SHOEBOX_BIND=f"127.0.0.1:{port}", SHOEBOX_WEB_WORKERS="1")
    return env


def answers(port: int) -> int | None:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status
    except OSError:
        return None


@pytest.fixture(scope="module")
def data_dir():
    # A folder of its own under /tmp (not under /root, and no parent that pgserver as root would
    # widen), migrated once for this module's servers, which run one after another.
    data = Path(tempfile.mkdtemp(prefix="shoebox-serve-", dir="/tmp"))
    subprocess.run([*MANAGE, "migrate", "--noinput", "-v0"], env=server_env(data, free_port()), check=True, timeout=180)
    yield data
    embedded_postgres.stop(data / "pg")
    shutil.rmtree(data, ignore_errors=True)


class Servers:
    """Starts ``manage.py serve``; whatever a test leaves running is stopped after it."""

    def __init__(self, data: Path):
        self.data = data
        self.started: list[subprocess.Popen] = []
        self.children: list[psutil.Process] = []

    def start(self, port: int | None = None) -> tuple[subprocess.Popen, int]:
        """``make run``: the database is up (migrate started it) before ``serve`` starts."""
        port = port or free_port()
        env = server_env(self.data, port)
        subprocess.run([*MANAGE, "shoebox_db", "start"], env=env, check=True, capture_output=True, timeout=120)
        proc = subprocess.Popen([*MANAGE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.started.append(proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not (answers(port) == 200 and self._up(proc)):
            time.sleep(0.5)
        assert proc.poll() is None, f"serve exited: {proc.stdout.read().decode()}"
        assert answers(port) == 200, "the web server answers"
        assert self._up(proc), "the worker runs its sentinel, pusher, monitor and workers"
        return proc, port

    @staticmethod
    def _up(proc: subprocess.Popen) -> bool:
        from django.conf import settings

        for child in psutil.Process(proc.pid).children():
            if "qcluster" in " ".join(child.cmdline()):
                return len(child.children(recursive=True)) >= 3 + settings.Q_CLUSTER["workers"]
        return False

    def children_of(self, proc: subprocess.Popen) -> list[psutil.Process]:
        """Every gunicorn and qcluster process under ``proc``."""
        children = [c for c in psutil.Process(proc.pid).children(recursive=True)
                    if "gunicorn" in " ".join(c.cmdline()) or "qcluster" in " ".join(c.cmdline())]
        self.children += children
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "gunicorn" in names and "qcluster" in names
        return children

    def cleanup(self):
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        left = [child for child in self.children if child.is_running()]  # psutil: never a reused pid
        for child in list(left):
            try:
                left += [c for c in child.children(recursive=True) if c.name() != "postgres"]
            except psutil.NoSuchProcess:
                pass
        for proc in left:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=5)


@pytest.fixture
def servers(data_dir):
    launched = Servers(data_dir)
    yield launched
    launched.cleanup()


def test_serve_runs_web_and_worker_and_ctrl_c_stops_everything(servers, data_dir):
    serve, port = servers.start()
    children = servers.children_of(serve)
    assert embedded_postgres.status(data_dir / "pg") is not None

    serve.send_signal(signal.SIGINT)  # Ctrl-C
    serve.wait(timeout=40)
    assert serve.returncode == 0
    assert b"Shoebox stopped." in serve.stdout.read()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {alive}"
    assert embedded_postgres.status(data_dir / "pg") is None, "the database is stopped too"
    assert not (data_dir / "serve.json").exists()


def test_web_and_worker_die_with_a_supervisor_killed_outright(servers, data_dir):
    serve, port = servers.start()
    children = servers.children_of(serve)
    serve.kill()  # SIGKILL: no handler, no finally
    serve.wait()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphans left running: {[' '.join(c.cmdline()) for c in alive]}"
    assert answers(port) is None


def test_a_second_serve_says_where_shoebox_runs_and_leaves_it_alone(servers, data_dir):
    first, port = servers.start()
    children = servers.children_of(first)
    database = embedded_postgres.status(data_dir / "pg")

    second = subprocess.run([*MANAGE, "serve"], env=server_env(data_dir, port),  # `make run` again
                            capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"Shoebox is already running (pid {first.pid}) at http://127.0.0.1:{port}/" in second.stderr
    assert first.poll() is None and answers(port) == 200, "the first keeps serving"
    assert all(child.is_running() for child in children)
    assert embedded_postgres.status(data_dir / "pg") == database, "its database untouched"


def test_after_a_kill_serve_starts_cleanly_and_reuses_the_database(servers, data_dir):
    first, port = servers.start()
    old_children = servers.children_of(first)
    database = embedded_postgres.status(data_dir / "pg")
    first.kill()
    first.wait()

    second, _ = servers.start(port)  # at once, on the same port
    new_children = servers.children_of(second)
    assert not any(child.is_running() for child in old_children)
    assert not {c.pid for c in new_children} & {c.pid for c in old_children}
    assert embedded_postgres.status(data_dir / "pg") == database, "the embedded Postgres is reused"

    second.send_signal(signal.SIGINT)
    second.wait(timeout=40)
    assert second.returncode == 0
    assert embedded_postgres.status(data_dir / "pg") is None


def test_leftovers_named_in_the_pid_file_are_stopped_but_a_reused_pid_is_not(tmp_path):
    # Where the parent-death signal does not exist (not Linux), the pid file is what finds the
    # children of a killed supervisor. A pid is theirs only with the same start time and command line.
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stranger = subprocess.Popen(["sleep", "60"])  # holds a pid the file names, since reused
    try:
        left, other = psutil.Process(leftover.pid), psutil.Process(stranger.pid)
        (tmp_path / "serve.json").write_text(json.dumps({
            "pid": 4194000, "url": "http://127.0.0.1:8000/",
            "children": {
                "web": {"pid": left.pid, "started": left.create_time(), "cmdline": left.cmdline()},
                "worker": {"pid": other.pid, "started": other.create_time() - 3600, "cmdline": other.cmdline()},
            },
        }))
        out = io.StringIO()
        supervisor.stop_leftovers(tmp_path, out=out)
        assert leftover.wait(timeout=10) is not None, "the leftover child is stopped"
        assert f"pid {leftover.pid}" in out.getvalue()
        assert stranger.poll() is None, "the process that reused a pid is untouched"
    finally:
        for proc in (leftover, stranger):
            proc.kill()
            proc.wait()


def shell(data: Path, code: str) -> str:
    done = subprocess.run([*MANAGE, "shell", "-v", "0", "-c", code], env=server_env(data, free_port()),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_after_the_postmaster_itself_is_killed_serve_restarts_the_database_and_nothing_is_lost(servers, data_dir):
    serve, port = servers.start()
    shell(data_dir, "from gallery.models import Library; "
                    "Library.objects.get_or_create(name='before the crash', root='/tmp/before-the-crash')")
    postmaster = psutil.Process(embedded_postgres.status(data_dir / "pg")["pid"])
    backends = postmaster.children()
    postmaster.kill()  # SIGKILL of the database server alone: the OOM killer's favourite
    postmaster.wait(10)
    assert embedded_postgres.status(data_dir / "pg") is None
    serve.send_signal(signal.SIGINT)
    serve.wait(timeout=60)
    psutil.wait_procs(backends, timeout=10)

    second, port = servers.start(port)  # `make run` again: a stale postmaster.pid, crash recovery
    assert answers(port) == 200
    assert shell(data_dir, "from gallery.models import Library; "
                           "print(Library.objects.filter(name='before the crash').count())") == "1"
    second.send_signal(signal.SIGINT)
    second.wait(timeout=40)
    assert second.returncode == 0


def test_web_processes_give_torch_one_thread_and_the_worker_its_share(settings):
    """Web requests run side by side: the text encoder in each gets one thread, not every core."""
    settings.WEB_TORCH_THREADS, settings.WORKER_THREADS = 1, 2
    web, worker = supervisor.child_env("web"), supervisor.child_env("worker")
    assert (web["OMP_NUM_THREADS"], web["SHOEBOX_WORKER_THREADS"]) == ("1", "1")
    assert worker["OMP_NUM_THREADS"] == "2" and worker["OMP_WAIT_POLICY"] == web["OMP_WAIT_POLICY"] == "PASSIVE"
