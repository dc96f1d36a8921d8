"""What machine a benchmark ran on, printed beside every table: cores, CPU model, speed and steadiness,
load average, and the versions of what ran.

`describe()` is the one description every benchmark starts its meta (and JSON) with.
"""

import contextlib
import importlib
import os
import platform
import time
from pathlib import Path

from bench.harness.stats import percentile


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


def cpu_jitter(seconds: float = 5.0, period_s: float = 0.02) -> dict:
    """How steady one core is: the same small piece of Python work (a 60,000-iteration loop),
    run every `period_s` for `seconds`; its duration's p50 / p99 / max in ms.

    On a quiet dedicated core p99 is close to p50. On the shared machines we measure on, p99
    was 3x p50 with nothing else of ours running: no request latency's p99 can be better than
    that ratio times its own CPU time allows.
    """
    durations = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        total = 0
        for n in range(60_000):
            total += n
        durations.append((time.perf_counter() - started) * 1000)
        time.sleep(period_s)
    return {
        "p50_ms": round(percentile(durations, 50), 2),
        "p99_ms": round(percentile(durations, 99), 2),
        "max_ms": round(max(durations), 2),
        "samples": len(durations),
    }


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


def versions(*modules: str) -> dict[str, str]:
    """Python's version and each importable module's `__version__` (those that fail to import left out)."""
    found = {"python": platform.python_version()}
    for name in modules:
        with contextlib.suppress(ImportError):
            found[name] = importlib.import_module(name).__version__
    return found


def describe() -> dict:
    """The machine at the start of a benchmark: cores, CPU model, load average, CPU speed, Python."""
    return {
        "nproc": cpu_count(),
        "cpu_model": cpu_model(),
        "loadavg_start": loadavg(),
        "cpu_speed_ms_start": cpu_speed_ms(),
        "python": platform.python_version(),
    }


def torch_arguments(parser) -> None:
    """--device and --threads, the two settings every torch benchmark states."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the training worker sets 1)")


def torch_machine(*, threads: int, device: str) -> str:
    """Set torch's threads and say what the figures are taken on: cores, CPU, load, speed, torch."""
    import torch

    torch.set_num_threads(threads)
    machine = describe()
    return (
        f"machine: {machine['nproc']} cores ({machine['cpu_model']}), "
        f"load average {machine['loadavg_start']}, "
        f"CPU speed {machine['cpu_speed_ms_start']} ms (lower is faster); torch {torch.__version__}, "
        f"{threads} thread(s), device {device}"
    )
