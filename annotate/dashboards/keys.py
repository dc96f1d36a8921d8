"""Reading the tallies' keys and the annotators' names, shared by every chart's figures."""

import json
from collections.abc import Mapping
from datetime import date, timedelta


def _parts(raw: str, length: int) -> list | None:
    """A tally key's parts, or None for a key of another shape."""
    try:
        parts = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parts, list) or len(parts) != length:
        return None
    return parts


def _day(raw) -> date | None:
    try:
        return date.fromisoformat(raw)
    except (TypeError, ValueError):
        return None


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _share(n: int, total: int) -> float | None:
    return n / total if total else None


def _name(names: Mapping[int, str], annotator_id: int) -> str:
    return names.get(annotator_id, f"#{annotator_id}")


def _by_name(rows, names: Mapping[int, str]):
    return sorted(rows, key=lambda a: (_name(names, a).lower(), a))
