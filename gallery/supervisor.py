"""Run the web server and the worker together; stop both (and the database) together.

``make run`` ends in ``manage.py serve``. Ctrl-C (SIGINT) or SIGTERM stops
gunicorn and the django-q2 cluster, waits for them, then stops the embedded
Postgres. If either child exits on its own, the other is stopped too.

A supervisor killed outright (``kill -9``, the OOM killer, a container stop
past its grace period) runs no clean-up of its own, so:

- On Linux each child asks the kernel for SIGTERM when the supervisor dies
  (``PR_SET_PDEATHSIG``): gunicorn and qcluster shut themselves down.
- ``$SHOEBOX_DATA_DIR/serve.lock`` stays locked (``flock``) while a
  supervisor lives; the kernel releases it when the supervisor dies, however it dies.
  ``serve.json`` beside it names the supervisor, its URL and its children
  (pid, start time, command line). A second ``serve`` finds the lock taken,
  says where Shoebox runs and exits without touching anything. A ``serve`` that takes the lock
  after a killed one stops the children that outlived it (where no parent-death
  signal exists) — each only if its pid still has the recorded start time
  and command line, so a reused pid is never signalled — and reuses the
  embedded Postgres, which outlives its users by design.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from django.conf import settings

from gallery import embedded_postgres

LOCK_NAME = "serve.lock"
RUN_FILE_NAME = "serve.json"
# What a child's command line still contains after it renames itself with setproctitle
# ("gunicorn: master […]", "qcluster MainProcess …"), when that package is installed.
_TITLE_WORDS = {"web": "gunicorn", "worker": "qcluster"}


def commands(bind: str, web_workers: int) -> dict[str, list[str]]:
    python = sys.executable
    manage = str(settings.BASE_DIR / "manage.py")
    return {
        "worker": [python, manage, "qcluster"],
        "web": [
            python, "-m", "gunicorn", "gallery.wsgi:application",
            "--bind", bind, "--workers", str(web_workers), "--threads", "4",
            "--timeout", "120", "--graceful-timeout", "10",
            "--access-logfile", "-", "--chdir", str(settings.BASE_DIR),
            # gunicorn 27 otherwise opens a control socket under ~/.gunicorn; Shoebox never uses it.
            "--no-control-socket",
        ],
    }


def child_env(name: str) -> dict[str, str]:
    """The environment of the ``web`` or ``worker`` child: idle OpenMP threads sleep, and torch gets
    the worker's threads there, one thread in each web process (``SHOEBOX_WEB_TORCH_THREADS``)."""
    threads = str(settings.WEB_TORCH_THREADS if name == "web" else settings.WORKER_THREADS)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=threads)
    if name == "web":
        env["SHOEBOX_WORKER_THREADS"] = threads  # what tagging.clip gives torch when it loads a model
    return env


def _die_with_parent(parent: int):
    """A ``preexec_fn`` that makes the child get SIGTERM when ``parent`` dies (Linux only).

    The kernel sends the signal when the parent exits for any reason, SIGKILL
    included. If the parent died before the call, nobody would send it: the
    child checks its parent afterwards and exits at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child
    pr_set_pdeathsig = 1

    def preexec() -> None:
        if prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _take_lock(path: Path) -> int | None:
    """An open, exclusively locked descriptor of ``path``; None if another process holds the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_run_file(path: Path, out) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        out.write(f"Ignoring unreadable {path}: {exc}\n")
        return {}


def _write_run_file(path: Path, state: dict) -> None:
    part = path.with_name(f"{path.name}.part")  # only the lock holder writes
    part.write_text(json.dumps(state, indent=1))
    os.replace(part, path)


def _describe(proc: subprocess.Popen, cmd: list[str]) -> dict:
    """How the next supervisor recognises this child: pid, start time, command line."""
    return {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time(), "cmdline": cmd}


def _same_process(name: str, entry: dict) -> psutil.Process | None:
    """The process ``entry`` describes, if its pid still belongs to it (not reused since)."""
    try:
        proc = psutil.Process(int(entry["pid"]))
        if abs(proc.create_time() - float(entry["started"])) > 0.05:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, TypeError, ValueError):
        return None
    if cmdline == entry.get("cmdline") or _TITLE_WORDS.get(name, "\0") in " ".join(cmdline):
        return proc
    return None


def stop_leftovers(data_dir: Path, *, out=sys.stdout, timeout: float = 30) -> None:
    """Stop the children that a killed supervisor left running, as ``serve.json`` names them.

    Call it holding the lock, so that their supervisor is known to be dead.
    Each is stopped as on Ctrl-C (SIGTERM to its main process, which stops
    its own workers), then with SIGKILL to its process group after ``timeout``.
    """
    previous = _read_run_file(Path(data_dir) / RUN_FILE_NAME, out)
    procs = []
    for name, entry in previous.get("children", {}).items():
        proc = _same_process(name, entry)
        if proc is None:
            continue
        out.write(f"Stopping {name} (pid {proc.pid}), left running by a supervisor that was killed.\n")
        try:
            proc.terminate()  # psutil checks that the pid was not reused
        except psutil.NoSuchProcess:
            continue
        procs.append(proc)
    gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        if proc.is_running():  # psutil compares start times: still that process
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: its workers too
    psutil.wait_procs(alive, timeout=5)
    out.flush()


def serve(bind: str, web_workers: int = 2, *, out=sys.stdout, err=sys.stderr) -> int:
    data_dir = Path(settings.DATA_DIR)
    run_file = data_dir / RUN_FILE_NAME
    lock = _take_lock(data_dir / LOCK_NAME)
    if lock is None:
        running = _read_run_file(run_file, err)
        err.write(
            f"Shoebox is already running (pid {running.get('pid', 'unknown')}) at {running.get('url', 'its address')}"
            " — stop it first (Ctrl-C where it runs).\n"
        )
        err.flush()
        return 1
    try:
        stop_leftovers(data_dir, out=out)
        return _supervise(bind, web_workers, run_file, out)
    finally:
        os.close(lock)  # releases the lock


def _supervise(bind: str, web_workers: int, run_file: Path, out) -> int:
    from django.core.management import call_command

    # Hashed, compressed static files for WhiteNoise (fast when nothing changed).
    call_command("collectstatic", interactive=False, verbosity=0)
    url = f"http://{bind}/"
    state = {"pid": os.getpid(), "url": url, "children": {}}
    _write_run_file(run_file, state)
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        for name, cmd in commands(bind, web_workers).items():
            # Own sessions: Ctrl-C reaches us, and we stop children in order.
            children[name] = subprocess.Popen(
                cmd, env=child_env(name), start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
            )
            state["children"][name] = _describe(children[name], cmd)
            _write_run_file(run_file, state)
        out.write(f"Shoebox is running at {url} — press Ctrl-C to stop.\n")
        out.flush()
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    out.write(f"{name} exited with status {proc.returncode}; stopping.\n")
                    code = proc.returncode or 1
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                # The main process only: gunicorn's master and django-q2's sentinel stop
                # their own children (a SIGTERM to the whole group made qcluster hang).
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        db = settings.DATABASES["default"]
        if "OPTIONS_EMBEDDED_PGDATA" in db:
            from django.db import connections

            connections.close_all()
            embedded_postgres.stop(db["OPTIONS_EMBEDDED_PGDATA"])
        run_file.unlink(missing_ok=True)
        out.write("Shoebox stopped.\n")
    return code
