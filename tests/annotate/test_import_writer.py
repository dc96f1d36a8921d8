"""The batch writer: batches, COPY on PostgreSQL or bulk_create, all or nothing, and the planner's
statistics after an import."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate.importing import (
    ImportRejected,
    ImportResult,
    import_csv,
    import_json,
    import_jsonl,
    rows,
    writer,
)
from annotate.models import Annotation, Item
from tests.annotate import uploads
from tests.annotate.uploads import file, stored_counts

pytestmark = pytest.mark.django_db

project = uploads.project


def test_big_file_is_written_in_batches_and_progress_is_reported(project):
    rows = "".join(f"row {n},{'positive' if n % 2 else 'negative'}\n" for n in range(2500))
    calls = []

    result = import_csv(
        project=project,
        file=file("text,label\n" + rows),
        filename="big.csv",
        label_column="label",
        progress=lambda done, total: calls.append((done, total)),
    )

    assert result == ImportResult(items_created=2500, annotations_created=2500, proposals=0)
    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert Item.objects.filter(project=project, annotation_count=1, is_complete=True).count() == 2500
    assert set(Annotation.objects.values_list("item_id", flat=True)) == set(
        Item.objects.values_list("id", flat=True)
    )


@pytest.mark.parametrize("postgres_copy", [True, False], ids=["copy-on-postgres", "bulk-create"])
def test_both_write_paths_store_the_same_rows(project, monkeypatch, postgres_copy):
    monkeypatch.setattr(writer, "POSTGRES_COPY", postgres_copy)
    data = json.dumps(
        [
            {"id": "a", "text": "x", "label": "negative", "prediction": {"label": "positive", "score": 0.5}},
            {"id": "b", "text": "y", "note": {"nested": [1, "two"]}},
        ]
    )

    import_json(project=project, file=file(data), filename="w.json", label_source="gold")

    a, b = Item.objects.order_by("external_id")
    assert (a.text, a.annotation_count, a.is_complete, a.lease_count) == ("x", 1, True, 0)
    assert 0 <= a.priority < 1 and 0 <= b.priority < 1  # random: the queue never serves a file in its order
    assert a.proposal == {"value": {"choices": ["positive"]}, "score": 0.5}
    assert (b.metadata, b.proposal, b.annotation_count, b.is_complete) == (
        {"note": {"nested": [1, "two"]}},
        None,
        0,
        False,
    )
    assert a.created_at is not None and a.image.name == ""
    annotation = Annotation.objects.get()
    assert (annotation.item_id, annotation.value, annotation.source) == (
        a.id,
        {"choices": ["negative"]},
        "gold",
    )
    assert (annotation.counted, annotation.late, annotation.active_ms, annotation.proposal_value) == (
        True,
        False,
        0,
        None,
    )


@pytest.mark.postgres_only
def test_postgres_writes_items_and_annotations_with_copy(project):
    data = "text,label\n" + "".join(f"row {n},positive\n" for n in range(2100))

    with CaptureQueriesContext(connection) as queries:
        import_csv(project=project, file=file(data), filename="c.csv", label_column="label")

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "annotate_')]
    # Items and annotations went in with COPY; one INSERT adds the import's quality tallies.
    assert len(inserts) == 1 and inserts[0].startswith('INSERT INTO "annotate_tally"'), inserts
    assert Annotation.objects.filter(item__project=project).count() == 2100


@pytest.mark.parametrize("postgres_copy", [True, False], ids=["copy-on-postgres", "bulk-create"])
def test_many_batches_store_every_row_whole_whatever_its_characters(project, monkeypatch, postgres_copy):
    # Batches of 3: on PostgreSQL each goes in with COPY on the writer thread while the next is
    # validated, in COPY's text format, which must escape what would end a column or a line.
    monkeypatch.setattr(writer, "POSTGRES_COPY", postgres_copy)
    monkeypatch.setattr(writer, "BATCH_SIZE", 3)
    awkward = ["tab\there", "back\\slash \\N", "\\.", "line\nbreak", "cr\rhere", "ünïcødé ✓", "plain"]
    lines = [
        {"id": f"id {n}\t{n}", "text": text, "label": "positive" if n % 2 else None, "note": text}
        for n, text in enumerate(awkward)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines)

    result = import_jsonl(project=project, file=file(data), filename="w.jsonl")

    assert result == ImportResult(items_created=7, annotations_created=3, proposals=0)
    stored = {item.external_id: item for item in Item.objects.filter(project=project)}
    assert {key: (item.text, item.metadata) for key, item in stored.items()} == {
        line["id"]: (line["text"], {"note": line["text"]}) for line in lines
    }
    annotated = Annotation.objects.filter(project=project).values_list("item__external_id", "value")
    assert sorted(annotated) == [(line["id"], {"choices": ["positive"]}) for line in lines if line["label"]]
    assert {(i.annotation_count, i.is_complete) for i in stored.values() if i.text == "tab\there"} == {
        (0, False)
    }


@pytest.mark.parametrize("postgres_copy", [True, False], ids=["copy-on-postgres", "bulk-create"])
def test_a_refusal_after_batches_were_written_leaves_nothing(project, monkeypatch, postgres_copy):
    monkeypatch.setattr(writer, "POSTGRES_COPY", postgres_copy)
    monkeypatch.setattr(writer, "BATCH_SIZE", 2)
    import_csv(project=project, file=file("id,text\nold,first\n"), filename="a.csv", id_column="id")
    before = stored_counts()
    rows = "".join(f"n{n},text {n}\n" for n in range(6))

    # An id that exists is found by the writer (batch 4); a bad label by the validator (line 9).
    with pytest.raises(ImportRejected, match=r"^b.csv, line 8, field 'id': an item with id 'old' already"):
        import_csv(
            project=project, file=file(f"id,text\n{rows}old,y\nn9,z\n"), filename="b.csv", id_column="id"
        )
    labelled = "".join(f"c{n},text {n},\n" for n in range(6)) + "c6,y,negative\nc7,z,meh\n"
    with pytest.raises(ImportRejected, match=r"^c.csv, line 9, field 'label': unknown label 'meh'"):
        import_csv(
            project=project,
            file=file(f"id,text,label\n{labelled}"),
            filename="c.csv",
            id_column="id",
            label_column="label",
        )

    assert stored_counts() == before


@pytest.mark.postgres_only
def test_a_row_the_database_refuses_in_a_late_batch_leaves_nothing(project, monkeypatch):
    # PostgreSQL's jsonb holds no Infinity (1e400 reads as one). The row rules refuse it now
    # (test_a_number_that_is_not_finite_is_refused_by_name); with that rule switched off, as a rule
    # that misses something would be, the writer thread's COPY of the third batch fails.
    monkeypatch.setattr(rows, "nonfinite_path", lambda value: None)
    monkeypatch.setattr(writer, "BATCH_SIZE", 2)
    lines = [{"text": f"t{n}", "note": 1e400 if n == 5 else "ok"} for n in range(7)]
    before = stored_counts()

    with pytest.raises(ImportRejected, match=r"^z.jsonl: the database refused the items, nothing was stored"):
        import_jsonl(
            project=project, file=file("".join(json.dumps(x) + "\n" for x in lines)), filename="z.jsonl"
        )

    assert stored_counts() == before
    assert Item.objects.filter(project=project).count() == 0  # the connection is usable again


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_that_is_not_finite_is_refused_by_name(project, number):
    lines = f'{{"text": "ok", "note": {{"a": [1, 2]}}}}\n{{"text": "t", "note": {{"a": [1, {number}]}}}}\n'
    with pytest.raises(ImportRejected, match=r"^n.jsonl, line 2, field 'note.a\[1\]': a number that is not"):
        import_jsonl(project=project, file=file(lines), filename="n.jsonl")
    assert Item.objects.filter(project=project).count() == 0
