"""CPU time and memory of a running ``manage.py serve``: web (gunicorn), worker (qcluster), database.

Used by ``bench/load_bench.py`` and its locust file. No Django, no gevent:
psutil only, so both processes can import it.

CPU time is counted per process tree, reaped children included: a process's
``children_user`` / ``children_system`` hold the time of the children it has
waited for, so a Postgres backend that exits inside a measured window (Django
closes connections older than ``CONN_MAX_AGE``) still counts.
"""

from __future__ import annotations

from pathlib import Path

import psutil

MIB = 2**20


def server_pids(serve_pid: int, pgdata: Path) -> dict[str, int]:
    """{"web": gunicorn master, "worker": qcluster, "db": postmaster} of the ``serve`` running as ``serve_pid``."""
    pids = {}
    for child in psutil.Process(serve_pid).children():
        cmdline = " ".join(child.cmdline())
        for name, word in (("web", "gunicorn"), ("worker", "qcluster")):
            if word in cmdline:
                pids[name] = child.pid
    pids["db"] = int((Path(pgdata) / "postmaster.pid").read_text().split()[0])
    missing = {"web", "worker"} - set(pids)
    if missing:
        raise RuntimeError(f"serve (pid {serve_pid}) has no {' or '.join(sorted(missing))} child")
    return pids


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every descendant, living or reaped."""
    total = 0.0
    for proc in _tree(pid):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue  # exited between the listing and the read: its parent's children_* has it once reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MiB (pages shared after fork count once per process)."""
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue  # gone: it holds no memory
    return total / MIB


def cpu_by_part(pids: dict[str, int]) -> dict[str, float]:
    """{"web": s, "worker": s, "db": s} for the pids of :func:`server_pids`."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}
