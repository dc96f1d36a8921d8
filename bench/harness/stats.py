"""The log every benchmark writes to stderr, and the one latency analysis: nearest-rank percentiles
and the count / p50 / p95 / p99 / max summary of every latency figure."""

import math
import sys
import time


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (p in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def latency_summary(values: list[float]) -> dict:
    """Count, p50 / p95 / p99 and max in ms of durations in seconds."""
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else math.nan,
    }
