"""A 100,000-item export streams in flat memory: its peak is about the peak after 10,000 items.

Python allocations are measured with tracemalloc while the generator is consumed into a
null sink; the database driver's own buffers (libpq, SQLite's page cache) are not Python
objects and are bounded by the page size anyway.
"""

import gc
import re
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
from django.db.models import Sum

from annotate.exporting import export_csv, export_jsonl
from annotate.models import Annotation, Item
from tests.factories import UserFactory, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ITEMS = 100_000
EARLY = 10_000
BATCH = 5_000
# Annotations per item, cycling: some items have none, some two; one per item on average.
PER_ITEM = (0, 1, 1, 2)
PEAK_LIMIT = 60 * 2**20

_JSONL_ID = re.compile(r'^\{"id": (\d+),', re.MULTILINE)
_CSV_ID = re.compile(r"^(\d+),", re.MULTILINE)


def _big_project():
    users = [UserFactory().pk for _ in range(3)]
    project = make_project(labels=["positive", "negative"])
    created = datetime(2025, 3, 1, tzinfo=UTC)
    values = ({"choices": ["positive"]}, {"choices": ["negative"]})
    n_annotations = 0
    for start in range(0, ITEMS, BATCH):
        items = Item.objects.bulk_create(
            [
                Item(
                    project_id=project.id, external_id=f"x{i}", text=f"item number {i}, some words to export"
                )
                for i in range(start, start + BATCH)
            ],
            batch_size=BATCH,
        )
        annotations = []
        for i, item in enumerate(items, start=start):
            for k in range(PER_ITEM[i % len(PER_ITEM)]):
                annotations.append(
                    Annotation(
                        project_id=project.id,
                        item_id=item.pk,
                        annotator_id=users[(i + k) % len(users)],
                        value=values[k % 2],
                        active_ms=1000 + k,
                        created_at=created,
                    )
                )
        Annotation.objects.bulk_create(annotations, batch_size=BATCH)
        n_annotations += len(annotations)
    return project, n_annotations


def _consume(chunks, id_pattern):
    """Drain `chunks` into a null sink: (bytes, lines, distinct item ids, their sum, early peak, peak, s)."""
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    size = lines = seen = id_sum = last = 0
    early_peak = None
    for chunk in chunks:
        size += len(chunk.encode("utf-8"))
        lines += chunk.count("\n")
        for match in id_pattern.finditer(chunk):
            item_id = int(match.group(1))
            if item_id != last:
                seen += 1
                id_sum += item_id
                last = item_id
        if early_peak is None and seen >= EARLY:
            early_peak = tracemalloc.get_traced_memory()[1] - base
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return size, lines, seen, id_sum, early_peak, peak, seconds


def test_exporting_100000_items_streams_every_item_in_flat_memory_as_jsonl_and_csv(capsys):
    started = time.perf_counter()
    project, n_annotations = _big_project()
    setup = time.perf_counter() - started
    expected_sum = Item.objects.filter(project=project).aggregate(s=Sum("id"))["s"]
    csv_rows = sum(max(1, PER_ITEM[i % len(PER_ITEM)]) for i in range(ITEMS))

    jsonl = _consume(export_jsonl(project=project), _JSONL_ID)
    csv = _consume(export_csv(project=project), _CSV_ID)

    with capsys.disabled():
        print(f"\nsetup of {ITEMS} items and {n_annotations} annotations: {setup:.1f}s")
        for name, (size, _, _, _, early, peak, seconds) in (("jsonl", jsonl), ("csv", csv)):
            print(
                f"{name}: {size / 2**20:.1f} MiB in {seconds:.1f}s (traced); "
                f"peak {peak / 2**20:.1f} MiB, after {EARLY} items {early / 2**20:.1f} MiB"
            )
    size, lines, seen, id_sum, early, peak, _ = jsonl
    assert (lines, seen, id_sum) == (ITEMS, ITEMS, expected_sum)
    assert peak < PEAK_LIMIT
    assert peak < early * 1.5
    size, lines, seen, id_sum, early, peak, _ = csv
    assert (lines, seen, id_sum) == (1 + csv_rows, ITEMS, expected_sum)
    assert peak < PEAK_LIMIT
    assert peak < early * 1.5
