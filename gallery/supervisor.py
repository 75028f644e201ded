"""Run the web server and the worker together; stop both (and the database) together.

``make run`` ends in ``manage.py serve``. Ctrl-C (SIGINT) or SIGTERM stops
gunicorn and the django-q2 cluster, waits for them, then stops the embedded
Postgres. If either child exits on its own, the other is stopped too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings

from gallery import embedded_postgres


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


def serve(bind: str, web_workers: int = 2, *, out=sys.stdout) -> int:
    from django.core.management import call_command

    # Hashed, compressed static files for WhiteNoise (fast when nothing changed).
    call_command("collectstatic", interactive=False, verbosity=0)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(settings.WORKER_THREADS))
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, cmd in commands(bind, web_workers).items():
        # Own process groups: Ctrl-C reaches us, and we stop children in order.
        children[name] = subprocess.Popen(cmd, env=env, start_new_session=True)
    out.write(f"Shoebox is running at http://{bind}/ — press Ctrl-C to stop.\n")
    out.flush()
    code = 0
    try:
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
        out.write("Shoebox stopped.\n")
    return code
