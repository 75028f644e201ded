"""The embedded Postgres: started on demand, reused after a crash, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from gallery import embedded_postgres


@pytest.mark.django_db
def test_the_database_is_postgres_with_pgvector():
    with connection.cursor() as cur:
        cur.execute("select current_setting('server_version_num')::int, "
                    "(select extversion from pg_extension where extname = 'vector')")
        version, vector = cur.fetchone()
    assert version >= 180000
    assert vector is not None and vector.startswith("0.8")


@pytest.fixture
def pgdata():
    # Not under /root, and in a folder of its own (pgserver chmods parents as root).
    base = Path(tempfile.mkdtemp(prefix="shoebox-pgtest-", dir="/tmp"))
    yield base / "pg"
    embedded_postgres.stop(base / "pg")


def test_a_server_left_running_by_a_killed_process_is_found_and_reused(pgdata):
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from gallery import embedded_postgres as e; "
         f"e.start({str(pgdata)!r}); print('up', flush=True); time.sleep(60)"],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "up"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    orphan = embedded_postgres.status(pgdata)
    assert orphan is not None, "the postmaster outlives the killed process"

    params = embedded_postgres.start(pgdata)
    assert embedded_postgres.status(pgdata)["pid"] == orphan["pid"], "reused, not restarted"
    with psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres") as conn:
        assert conn.execute("select 1").fetchone() == (1,)

    assert embedded_postgres.stop(pgdata) is True
    assert embedded_postgres.status(pgdata) is None
    assert embedded_postgres.stop(pgdata) is False


def test_the_data_directory_may_not_live_under_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(RuntimeError, match="cannot live under /root"):
        embedded_postgres.start(Path("/root/shoebox/pg"))
