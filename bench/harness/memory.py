"""A process's memory, as the benchmarks report it: its resident set (VmRSS), its peak (VmHWM,
which can be reset to the current RSS) and this process's lifetime peak (ru_maxrss)."""

import contextlib
import ctypes
import gc
import resource
from pathlib import Path

MIB = 2**20


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB (empty if it is gone)."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def peak_reset(pid: int | str = "self") -> bool:
    """Reset a process's VmHWM to its current RSS (Linux ≥ 4.0); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def ru_maxrss_mib() -> float:
    """This process's peak resident set over its whole life, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def memory_settle() -> None:
    """Collect garbage and give freed heap back to the system, so the RSS before a run is its own."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
