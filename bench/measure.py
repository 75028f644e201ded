"""What every benchmark needs: the machine's CPU by name, and a timed loop (median and p95).

No Django, no database: the benchmarks that need neither import it too.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` says."""
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # no /proc (not Linux): platform's name
    return cpu


def timed(fn, repeat: int, *, numbered: bool = False) -> tuple[float, float]:
    """Median and p95 milliseconds of ``repeat`` calls of ``fn`` after one warm-up call.

    ``numbered``: ``fn`` takes the call's number (0 for the warm-up, then 1…repeat), so each
    call can act on a different item (accept a different suggestion, name a different group).
    """
    fn(0) if numbered else fn()
    samples = []
    for i in range(1, repeat + 1):
        t = time.perf_counter()
        fn(i) if numbered else fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return 1000 * statistics.median(samples), 1000 * samples[int(0.95 * (len(samples) - 1))]
