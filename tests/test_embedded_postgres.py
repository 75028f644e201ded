"""The embedded Postgres: started on demand, reused after a crash, stopped cleanly."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
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
    shutil.rmtree(base, ignore_errors=True)


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


def test_a_postmaster_pid_naming_an_unrelated_live_process_is_stale(pgdata):
    # After a reboot the pid in postmaster.pid may belong to anything: it must be neither
    # "reused" nor signalled, and the server must start fresh.
    embedded_postgres.start(pgdata)
    pid_file = pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    assert embedded_postgres.stop(pgdata) is True
    assert not pid_file.exists()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text("\n".join([str(sleeper.pid), *lines[1:]]) + "\n")
        assert embedded_postgres.status(pgdata) is None
        assert embedded_postgres.stop(pgdata) is False
        assert sleeper.poll() is None, "stop() left the unrelated process alone"

        params = embedded_postgres.start(pgdata)
        running = embedded_postgres.status(pgdata)
        assert running is not None and running["pid"] != sleeper.pid, "a fresh server, not the sleep"
        with psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres") as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert embedded_postgres.stop(pgdata) is True
        assert sleeper.poll() is None, "still untouched after a real start and stop"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_socket_folder_outside_the_data_directory_is_private_or_refused():
    # A data path too long for a unix socket makes pgserver put the socket in a folder under the
    # temp directory. Connections on the socket are trusted, so that folder must be private:
    # as root pgserver makes it world-writable (0777), which Shoebox refuses.
    base = Path(tempfile.mkdtemp(prefix="shoebox-pgtest-", dir="/tmp"))
    base.chmod(0o755)
    pgdata = base / ("long-" * 20) / "pg"
    assert len(str(pgdata / ".s.PGSQL.5432")) > 107
    try:
        if os.geteuid() == 0:
            with pytest.raises(RuntimeError, match="too long for a unix socket"):
                embedded_postgres.start(pgdata)
            assert embedded_postgres.status(pgdata) is None
        else:
            params = embedded_postgres.start(pgdata)
            socket_dir = Path(params["host"])
            assert socket_dir != pgdata
            assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
            with psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres") as conn:
                assert conn.execute("select 1").fetchone() == (1,)
    finally:
        embedded_postgres.stop(pgdata)
        shutil.rmtree(base, ignore_errors=True)


def test_a_socket_folder_is_made_private_and_one_of_another_user_is_refused(tmp_path):
    folder = tmp_path / "sock"
    folder.mkdir()
    folder.chmod(0o777)
    embedded_postgres._private_socket_dir(folder, os.geteuid())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(RuntimeError, match="not a folder"):
        embedded_postgres._private_socket_dir(link, os.geteuid())
    if os.geteuid() == 0:
        os.chown(folder, 12345, -1)  # made beforehand by someone else, in a shared temp dir
        with pytest.raises(RuntimeError, match="belongs to uid 12345"):
            embedded_postgres._private_socket_dir(folder, 0)


def test_as_root_a_home_directory_is_never_made_readable_by_everyone(monkeypatch):
    # pgserver, as root, chmods every parent of the data directory g+rx,o+rx.
    home = Path(tempfile.mkdtemp(prefix="shoebox-home-", dir="/tmp"))  # 0700, like a home directory
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(embedded_postgres, "_home_dirs", lambda: {home})
    try:
        with pytest.raises(RuntimeError, match="home directory"):
            embedded_postgres.start(home / "shoebox" / "pg")
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert not (home / "shoebox").exists()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_as_root_other_folders_made_readable_outside_the_data_directory_are_named(monkeypatch, caplog):
    private = Path(tempfile.mkdtemp(prefix="shoebox-private-", dir="/tmp"))  # 0700, not a home directory
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(embedded_postgres, "_home_dirs", lambda: set())
    try:
        with caplog.at_level(logging.WARNING, logger="gallery.embedded_postgres"):
            embedded_postgres._check_location(private / "data" / "pg")
        assert f"{private} (mode 700 → 755)" in caplog.text
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, "only named, not changed, by the check"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _shared_buffers(params: dict) -> str:
    with psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres") as conn:
        return conn.execute("show shared_buffers").fetchone()[0]


def test_each_fresh_start_applies_the_configured_shared_buffers(pgdata):
    params = embedded_postgres.start(pgdata, shared_buffers_setting="160MB")
    assert _shared_buffers(params) == "160MB"
    tuning = pgdata / "shoebox.conf"
    assert "shared_buffers = '160MB'" in tuning.read_text()
    assert stat.S_IMODE(tuning.stat().st_mode) == 0o600
    assert tuning.stat().st_uid == (pgdata / "postgresql.conf").stat().st_uid, "readable by the server's user"

    # A running server is reused as it is; the new value applies from its next start.
    assert _shared_buffers(embedded_postgres.start(pgdata, shared_buffers_setting="192MB")) == "160MB"
    embedded_postgres.stop(pgdata)
    assert _shared_buffers(embedded_postgres.start(pgdata, shared_buffers_setting="192MB")) == "192MB"
    includes = [line for line in (pgdata / "postgresql.conf").read_text().splitlines()
                if "shoebox.conf" in line and not line.startswith("#")]
    assert includes == ["include_if_exists = 'shoebox.conf'"], "included once, however many starts"


def test_by_default_shared_buffers_is_an_eighth_of_memory_between_128_mb_and_2_gb(monkeypatch):
    import psutil

    assert 0 < embedded_postgres.memory_bytes() <= psutil.virtual_memory().total, "a container's limit, if lower"
    for memory_gib, expected in [(0.5, "128MB"), (8, "1024MB"), (24, "2048MB"), (256, "2048MB")]:
        monkeypatch.setattr(embedded_postgres, "memory_bytes", lambda m=memory_gib: int(m * 2**30))
        assert embedded_postgres.shared_buffers() == expected
    assert embedded_postgres.shared_buffers("3GB") == "3GB", "a configured size is used as given"


def test_a_malformed_shared_buffers_setting_stops_start_up(monkeypatch):
    from gallery.env import ImproperSetting, envpgsize

    for bad in ["2G", "lots", "0MB", "-1GB", "512 MB; drop"]:
        monkeypatch.setenv("SHOEBOX_PG_SHARED_BUFFERS", bad)
        with pytest.raises(ImproperSetting, match="SHOEBOX_PG_SHARED_BUFFERS"):
            envpgsize("SHOEBOX_PG_SHARED_BUFFERS")
    monkeypatch.setenv("SHOEBOX_PG_SHARED_BUFFERS", "512MB")
    assert envpgsize("SHOEBOX_PG_SHARED_BUFFERS") == "512MB"
    monkeypatch.delenv("SHOEBOX_PG_SHARED_BUFFERS")
    assert envpgsize("SHOEBOX_PG_SHARED_BUFFERS") == ""
