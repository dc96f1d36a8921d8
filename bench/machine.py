"""What machine a benchmark ran on: printed beside every table."""

import contextlib
import os
import platform
import time
from pathlib import Path


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_speed_ms() -> float:
    """Milliseconds one core takes for a fixed pure-Python loop (best of 3; lower is faster).

    The machines we share change speed from hour to hour (other tenants): the same code gave
    twice the throughput on one day as on another. This figure, taken beside each table,
    says which kind of hour a table comes from. On 2026-11-27, one 2-core machine gave
    anywhere between 90 and 340 ms within an hour.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for n in range(2_000_000):
            total += n
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"
