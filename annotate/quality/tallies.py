"""Per-project counters (annotate.models.Tally): added to in the transaction of the change.

tallies_add is one INSERT … ON CONFLICT DO UPDATE for all the keys of a change (PostgreSQL and
SQLite alike). Keys are written in sorted order, so two transactions adding to the same keys
lock them in the same order and cannot deadlock.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable

from django.db import connection

from annotate.models import Tally
from annotate.raw_rows import table


def key(*parts) -> str:
    """A tally key: the parts as compact JSON (label names may hold any character)."""
    return json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False)


def tallies_add(cursor, *, project_id: int, added: Counter) -> None:
    """Add `added` ({(kind, key): n}) to the project's tallies; zero entries are left out."""
    rows = sorted((kind, k, n) for (kind, k), n in added.items() if n)
    if not rows:
        return
    name = table(Tally)
    quoted_key = connection.ops.quote_name("key")
    values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    params = [value for kind, k, n in rows for value in (project_id, kind, k, n)]
    cursor.execute(
        f"INSERT INTO {name} (project_id, kind, {quoted_key}, n) VALUES {values}"
        f" ON CONFLICT (project_id, kind, {quoted_key}) DO UPDATE SET n = {name}.n + excluded.n",
        params,
    )


def tallies_read(*, project_id: int, kinds: Iterable[str]) -> dict[str, dict[str, int]]:
    """{kind: {key: n}} of the project's tallies of these kinds (zero counts left out)."""
    kinds = list(kinds)
    found: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    rows = Tally.objects.filter(project_id=project_id, kind__in=kinds).exclude(n=0)
    for kind, k, n in rows.values_list("kind", "key", "n"):
        found[kind][k] = n
    return found


# The time histogram: 4 buckets per doubling of seconds (each about 19% wide), so a median read
# from it is within about 9% of the true one. Bucket b holds [2 ** (b / 4), 2 ** ((b + 1) / 4)) s.
SECONDS_BUCKETS_PER_DOUBLING = 4
_LOWEST_BUCKET, _HIGHEST_BUCKET = -40, 80  # about 1 ms to about 11 days


def seconds_bucket(active_ms: int) -> int:
    seconds = max(int(active_ms), 1) / 1000
    bucket = math.floor(SECONDS_BUCKETS_PER_DOUBLING * math.log2(seconds))
    return min(max(bucket, _LOWEST_BUCKET), _HIGHEST_BUCKET)


def bucket_seconds(bucket: int) -> float:
    """The middle (geometric) of a bucket, in seconds."""
    return 2 ** ((bucket + 0.5) / SECONDS_BUCKETS_PER_DOUBLING)


def annotation_tallies(
    *,
    annotator_id: int,
    day: str,
    active_ms: int,
    proposal_version_id: int | None,
    proposal_accepted: bool | None,
) -> Counter:
    """What one stored annotation adds to the dashboards: labels per annotator per day, the time
    histogram, and proposal acceptance per model version."""
    added: Counter = Counter()
    added["labels_day", key(day, annotator_id)] += 1
    added["seconds", key(annotator_id, seconds_bucket(active_ms))] += 1
    if proposal_version_id is not None and proposal_accepted is not None:
        added["proposal", key(proposal_version_id, "shown")] += 1
        if proposal_accepted:
            added["proposal", key(proposal_version_id, "accepted")] += 1
    return added
