"""Who holds a claim: a process named so that another process can tell whether it still lives.

A claim on a photo's stage (or on a library scan) records its holder as
``host:pid:start``, where ``start`` is the process's start time as the
kernel counts it. On the same host a holder is alive exactly when a process
with that pid exists and started at that time, so a pid reused after a crash
or a reboot is not mistaken for the old holder. A holder on another host
cannot be checked from here: its lease decides.
"""

from __future__ import annotations

import functools
import os
import socket

import psutil


def _start_time(pid: int) -> str | None:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@functools.cache
def _host() -> str:
    return socket.gethostname()


def current() -> str:
    """This process, as a holder name. Not cached: a forked worker has a pid of its own."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_time(pid)}"


def is_alive(holder: str) -> bool | None:
    """True or False for a holder on this host; None when it is on another host (or unreadable)."""
    try:
        rest, start = holder.rsplit(":", 1)
        host, pid = rest.rsplit(":", 1)
        pid_number = int(pid)
    except ValueError:
        return None
    if host != _host():
        return None
    if pid_number <= 0:
        return False
    return _start_time(pid_number) == start
