import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import JSONField, Value
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotate import exporting
from annotate.exporting import (
    columns,
    export_csv,
    export_filename,
    export_json,
    export_jsonl,
    pages,
    postgres,
)
from annotate.models import Annotation, Item, Membership, Project
from annotate.queue import annotation_submit
from tests.annotate import exported
from tests.annotate.exported import CAT, T0, label
from tests.factories import AnnotationFactory, ItemFactory, UserFactory, make_project

pytestmark = pytest.mark.django_db

studio = exported.studio


def _items(project, **options):
    return [json.loads(line) for line in "".join(export_jsonl(project=project, **options)).splitlines()]


def _expected_annotation(annotation):
    proposal = None
    if annotation.proposal_value is not None:
        proposal = {
            "value": annotation.proposal_value,
            "model_version_id": annotation.proposal_model_version_id,
        }
    return {
        "id": annotation.id,
        "annotator": annotation.annotator.username,
        "value": annotation.value,
        "created_at": annotation.created_at.isoformat(),
        "active_ms": annotation.active_ms,
        "late": annotation.late,
        "counted": annotation.counted,
        "rejected": annotation.rejected,
        "source": annotation.source,
        "proposal": proposal,
        "proposal_accepted": annotation.proposal_accepted,
    }


def _csv_rows(project, **options):
    return list(csv.DictReader(io.StringIO("".join(export_csv(project=project, **options)))))


# Content ------------------------------------------------------------------------------------


def test_jsonl_holds_every_item_with_every_annotation_and_all_its_fields(studio):
    exported = _items(studio)
    assert [item["external_id"] for item in exported] == ["t0", "t1", "t2"]
    for record in exported:
        item = Item.objects.get(pk=record["id"])
        assert (record["text"], record["metadata"]) == (item.text, item.metadata)
        stored = Annotation.objects.filter(item=item).order_by("id")
        assert record["annotations"] == [_expected_annotation(a) for a in stored]
    assert sum(len(record["annotations"]) for record in exported) == Annotation.objects.count() == 7


def test_an_annotation_shows_the_proposal_it_was_shown_and_whether_it_was_accepted(studio):
    t0 = _items(studio)[0]
    ann, bob, cy = t0["annotations"]
    assert ann == {
        "id": ann["id"],
        "annotator": "ann",
        "value": CAT,
        "created_at": "2025-03-01T12:00:00+00:00",
        "active_ms": 1500,
        "late": False,
        "counted": True,
        "rejected": False,
        "source": "",
        "proposal": {"value": CAT, "model_version_id": 7},
        "proposal_accepted": True,
    }
    assert (bob["proposal"], bob["proposal_accepted"]) == (None, None)
    assert (cy["proposal"], cy["proposal_accepted"], cy["active_ms"]) == (
        {"value": CAT, "model_version_id": 7},
        False,
        900,
    )


def test_final_label_is_the_majority_and_a_tie_is_marked_without_a_value(studio):
    t0, t1, t2 = _items(studio)
    assert t0["final_label"] == {"value": CAT, "source": "consensus"}
    # dee's late, uncounted annotation does not vote: 3 voters, one each for cat, dog and bird.
    assert t1["final_label"] == {"value": None, "source": "tie"}
    assert t2["final_label"] == {"value": None, "source": "none"}
    assert t2["annotations"] == []
    assert [t["gold"] for t in (t0, t1, t2)] == [False, False, False]


def test_multi_label_final_label_keeps_labels_chosen_by_more_than_half_of_the_voters():
    users = [UserFactory() for _ in range(3)]
    project = make_project(
        labels=["a", "b", "c"],
        items=1,
        overlap=3,
        multi_label=True,
        members=[(u, Membership.Role.ANNOTATOR) for u in users],
    )
    for user, choices in zip(users, (["a", "b"], ["b", "a"], ["b", "c"]), strict=True):
        label(project, user, choices)
    (item,) = _items(project)
    assert item["final_label"] == {"value": {"choices": ["a", "b"]}, "source": "consensus"}
    rows = _csv_rows(project)
    assert [row["value"] for row in rows] == ["a;b", "a;b", "b;c"]
    assert {row["final_label"] for row in rows} == {"a;b"}


def test_a_resubmit_replaces_the_annotators_own_vote_in_the_finallabel():
    user = UserFactory()
    project = make_project(labels=["cat", "dog"], items=1, members=[(user, Membership.Role.ANNOTATOR)])
    annotation = label(project, user, ["cat"])
    annotation_submit(project=project, item_id=annotation.item_id, annotator=user, value={"choices": ["dog"]})
    (item,) = _items(project)
    assert item["final_label"] == {"value": {"choices": ["dog"]}, "source": "single"}
    assert [a["value"] for a in item["annotations"]] == [CAT, {"choices": ["dog"]}]


def test_json_parses_back_to_the_same_items_as_jsonl(studio):
    parsed = json.loads("".join(export_json(project=studio)))
    assert parsed == _items(studio)


def test_json_of_a_project_without_items_is_an_empty_array():
    project = make_project()
    assert json.loads("".join(export_json(project=project))) == []
    assert list(export_jsonl(project=project)) == []


def test_csv_has_one_row_per_annotation_and_one_empty_row_per_unlabeled_item(studio):
    rows = _csv_rows(studio)
    assert list(rows[0]) == list(exporting.CSV_COLUMNS)
    assert [(row["external_id"], row["annotator"]) for row in rows] == [
        ("t0", "ann"),
        ("t0", "bob"),
        ("t0", "cy"),
        ("t1", "ann"),
        ("t1", "bob"),
        ("t1", "cy"),
        ("t1", "dee"),
        ("t2", ""),
    ]
    first = rows[0]
    assert first == {
        "item_id": str(Item.objects.get(project=studio, external_id="t0").pk),
        "external_id": "t0",
        "text": "text number 0",
        "final_label": "cat",
        "final_source": "consensus",
        "gold": "false",
        "annotator": "ann",
        "value": "cat",
        "created_at": "2025-03-01T12:00:00+00:00",
        "active_ms": "1500",
        "late": "false",
        "counted": "true",
        "rejected": "false",
        "source": "",
        "proposal": "cat",
        "proposal_model_version_id": "7",
        "proposal_accepted": "true",
    }
    dee = rows[6]
    assert (dee["final_label"], dee["final_source"], dee["late"], dee["counted"], dee["source"]) == (
        "",
        "tie",
        "true",
        "false",
        "import:batch-1",
    )
    assert (dee["proposal"], dee["proposal_accepted"]) == ("", "")
    unlabeled = rows[7]
    assert [unlabeled[c] for c in ("annotator", "value", "created_at", "active_ms", "proposal")] == [""] * 5
    assert (unlabeled["final_label"], unlabeled["final_source"]) == ("", "none")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_labeled_only_leaves_out_items_without_annotations(studio, fmt):
    text = "".join(exporting.export_stream(project=studio, format=fmt, labeled_only=True))
    assert "t1" in text
    assert "t2" not in text
    assert "t2" in "".join(exporting.export_stream(project=studio, format=fmt))


def test_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas():
    user = UserFactory(username="@admin")
    project = make_project(labels=["=SUM(A1)", "ok"], members=[(user, Membership.Role.ANNOTATOR)])
    ItemFactory(project=project, external_id="+1", text="=cmd|' /C calc'!A0")
    ItemFactory(project=project, external_id="-2", text="\tindented")
    ItemFactory(project=project, external_id="plain", text="safe = text")
    label(project, user, ["=SUM(A1)"])
    rows = _csv_rows(project)
    assert [row["text"] for row in rows] == ["'=cmd|' /C calc'!A0", "'\tindented", "safe = text"]
    assert [row["external_id"] for row in rows] == ["'+1", "'-2", "plain"]
    assert (rows[0]["annotator"], rows[0]["value"], rows[0]["final_label"]) == (
        "'@admin",
        "'=SUM(A1)",
        "'=SUM(A1)",
    )
    assert rows[0]["item_id"].isdigit()


def test_an_image_project_exports_the_image_path_the_studios_url_of_the_image_and_its_size():
    project = make_project(labels=["cat", "dog"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)
    item = ItemFactory(
        project=project, external_id="img", text="", image="projects/1/a.png", width=640, height=480
    )
    ItemFactory(project=project, external_id="none", text="", image="")
    path = reverse("annotate:item-image", args=[project.pk, item.pk])

    record, without = _items(project)
    assert (record["image"], record["image_url"], record["width"], record["height"]) == (
        "projects/1/a.png",
        path,
        640,
        480,
    )
    assert without["image_url"] is None
    row, _ = _csv_rows(project)
    assert (row["image"], row["image_url"], row["width"], row["height"]) == (
        "projects/1/a.png",
        path,
        "640",
        "480",
    )
    absolute = _items(project, base_url="https://studio.example/")[0]["image_url"]
    assert absolute == f"https://studio.example{path}"


def test_a_column_added_to_the_table_is_written_by_every_format_and_path(studio, monkeypatch):
    # One line in exporting.columns: JSON and CSV, the generic path and PostgreSQL's text path.
    extra = columns.Column("late_again", columns.FLAG, ("late",))
    monkeypatch.setattr(columns, "ANNOTATION_COLUMNS", (*columns.ANNOTATION_COLUMNS, extra))

    records = _items(studio)
    rows = _csv_rows(studio)

    annotations = [a for record in records for a in record["annotations"]]
    assert [a["late_again"] for a in annotations] == [a["late"] for a in annotations]
    assert list(rows[0])[-1] == "late_again"
    assert [row["late_again"] for row in rows] == [row["late"] for row in rows]


def test_an_unknown_format_is_rejected():
    with pytest.raises(ValidationError, match="xml"):
        exporting.export_stream(project=make_project(), format="xml")


def test_export_filename_names_the_project_and_format():
    project = make_project(name="Movie reviews (EN)")
    assert export_filename(project, "jsonl").startswith(f"movie-reviews-en-{project.pk}-")
    assert export_filename(project, "jsonl").endswith(".jsonl")


# Queries and transactions ------------------------------------------------------------------


def test_queries_grow_with_pages_not_with_items_or_annotations(studio, monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    with CaptureQueriesContext(connection) as captured:
        _items(studio)
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    # Per page of 2 items, the items (with their final labels) and their annotations (joined
    # to the annotator's username); then the empty page that ends the export.
    assert len(selects) == 2 * 2 + 1
    assert not any(q.startswith('SELECT "auth_user"') for q in selects)


def test_progress_reports_items_done_out_of_the_total_after_each_page(studio, monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    seen = []
    list(export_csv(project=studio, progress=lambda done, total: seen.append((done, total))))
    assert seen == [(2, 3), (3, 3)]


def test_an_abandoned_export_leaves_the_callers_transaction_usable(studio):
    depth = len(connection.savepoint_ids)
    chunks = export_json(project=studio)
    next(chunks)
    next(chunks)
    chunks.close()
    assert len(connection.savepoint_ids) == depth
    assert Item.objects.filter(project=studio).count() == 3
    ItemFactory(project=studio, external_id="t3")
    assert Item.objects.filter(project=studio).count() == 4


@pytest.mark.django_db(transaction=True)
def test_an_abandoned_export_ends_its_transaction_and_the_next_query_works(monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SIZE", 1)
    project = make_project(items=3)
    mode = getattr(connection, "transaction_mode", None)
    chunks = export_jsonl(project=project)
    next(chunks)
    assert connection.in_atomic_block
    chunks.close()
    assert not connection.in_atomic_block
    assert connection.get_autocommit()
    assert getattr(connection, "transaction_mode", None) == mode
    ItemFactory(project=project, external_id="after")
    assert len(list(export_jsonl(project=project))) == 4


def _write_from_another_connection(project, item_id):
    """Add an item and change another's text on a second connection, committing both."""
    errors = []

    def run():
        try:
            ItemFactory(project=project, external_id="added-mid-export", text="new")
            Item.objects.filter(pk=item_id).update(text="changed mid-export")
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the writer was blocked by the export"
    assert not errors, errors


def _export_with_concurrent_write(project, monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SIZE", 1)
    last = Item.objects.filter(project=project).order_by("id").last()
    chunks = export_jsonl(project=project)
    first = next(chunks)
    isolation = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            isolation = cursor.fetchone()[0]
    _write_from_another_connection(project, last.pk)
    exported = [json.loads(line) for line in (first + "".join(chunks)).splitlines()]
    return exported, isolation


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_export_reads_one_repeatable_read_snapshot(monkeypatch):
    project = make_project(items=3)
    exported, isolation = _export_with_concurrent_write(project, monkeypatch)
    assert isolation == "repeatable read"
    assert [item["external_id"] for item in exported] == ["t0", "t1", "t2"]
    assert exported[-1]["text"] == "text number 2"
    after = _items(project)
    assert [item["external_id"] for item in after] == ["t0", "t1", "t2", "added-mid-export"]
    assert after[2]["text"] == "changed mid-export"


@pytest.mark.sqlite_only
@pytest.mark.django_db(transaction=True)
def test_on_sqlite_an_export_reads_one_snapshot_without_blocking_writers(monkeypatch):
    project = make_project(items=3)
    exported, _ = _export_with_concurrent_write(project, monkeypatch)
    assert [item["external_id"] for item in exported] == ["t0", "t1", "t2"]
    assert exported[-1]["text"] == "text number 2"
    assert [item["external_id"] for item in _items(project)][-1] == "added-mid-export"


# The PostgreSQL text path -------------------------------------------------------------------

# Texts where JSON or CSV quoting, escaping or the formula guard could go wrong.
TRICKY_TEXTS = [
    "quotes \" and ' and a backslash \\ and a slash /",
    "lines\nand\r\ncarriage returns, commas, and\ttabs",
    "=SUM(A1) looks like a formula",
    "\tstarts with a tab",
    "unicode: ünïcödé, 日本語, emoji 🐈, separators \u2028\u2029, DEL \x7f, control \x01\x1f",
    "",
]
# Metadata whose jsonb text differs from what was stored (key order, spacing, duplicates
# dropped), or holds numbers that a float would print otherwise, or strings with points.
TRICKY_METADATA = [
    {"zz": 1, "a": {"nested": ["ü", None, True, False, -0, 12345678901234567890]}, "mid": []},
    {"score": 0.1, "exact": 1.5, "big": 1.5e300, "tiny": 1e-7, "neg": -2.25, "whole": 3.0},
    {"url": "https://example.org/a.png", "version": "v1.2", "quote": '"\\/', "empty": {}},
    {},
    {"text": "\u2028\x7f\x01\n\t", "日本": {"deep": [[[]], {"k": [1, {"z": None}]}]}},
]
# Annotation values: plain choices, several, none, with a float, with non-string choices,
# and without choices at all (none of which votes for a label).
TRICKY_VALUES = [
    {"choices": ["cat"]},
    {"choices": ["dog", "cat"]},
    {"choices": []},
    {"choices": ["cat"], "confidence": 0.75},
    {"choices": [1, "ü"]},
    {"other": "x.1"},
    {"choices": ["=cat"]},
]
# Microseconds 0, with leading and trailing zeros; a year below 1000; another time zone.
TRICKY_TIMES = [
    T0,
    T0.replace(microsecond=123456),
    T0.replace(microsecond=5),
    T0.replace(microsecond=120000),
    datetime(999, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


def _tricky_project(kind):
    """A project whose export holds every text form the PostgreSQL path writes itself.

    Items of another project sit between its items (their annotations must not leak in), one
    item has no annotations, annotators resubmit, and proposals are missing, SQL NULL with a
    version, JSON null with and without one, or carry floats.
    """
    labels = ["cat", "dog", "=cat", "ü"]
    if kind == "image":
        project = make_project(labels=labels, task_type=Project.TaskType.IMAGE_CLASSIFICATION)
    else:
        project = make_project(labels=labels, multi_label=kind == "multi_label")
    other = make_project(labels=labels)
    users = [UserFactory(username=name) for name in ("ann", "=bob", '名前 "q"', "dee")]
    items = []
    for n in range(7):
        fields = {
            "external_id": ["+1", "x,y", 'q"uote', "ü-3", "-4", "plain-5", "6"][n],
            "text": TRICKY_TEXTS[n % len(TRICKY_TEXTS)],
            "metadata": TRICKY_METADATA[n % len(TRICKY_METADATA)],
        }
        if kind == "image":
            has_image = n % 3 != 2
            fields["image"] = f"projects/{project.pk}/img {n}.png" if has_image else ""
            fields["width"], fields["height"] = (640, 480) if has_image else (None, None)
        items.append(ItemFactory(project=project, **fields))
        AnnotationFactory(item=ItemFactory(project=other), annotator=users[0], value={"choices": ["dog"]})
    Item.objects.filter(pk=items[4].pk).update(metadata=Value(None, output_field=JSONField()))
    proposals = [(None, None), (CAT, 7), (None, 3), ({"choices": ["cat"], "score": 0.9}, None)]
    for n, item in enumerate(items[:-1]):
        for k in range(n % 4 + 1):
            proposal, version = proposals[(n + k) % len(proposals)]
            AnnotationFactory(
                item=item,
                annotator=users[(n + k) % len(users)],
                value=TRICKY_VALUES[(n * 3 + k) % len(TRICKY_VALUES)],
                created_at=TRICKY_TIMES[(n + k) % len(TRICKY_TIMES)],
                active_ms=(0, 1500, 2**31 - 1)[k % 3],
                late=k == 2,
                counted=k != 2,
                source=("", "import:batch.1", "=evil")[(n + k) % 3],
                proposal_value=proposal,
                proposal_model_version_id=version,
                proposal_accepted=(None, True, False)[(n + k) % 3] if version is not None else None,
            )
        # A resubmit by the item's first annotator: its latest value is the one that votes.
        AnnotationFactory(
            item=item, annotator=users[n % len(users)], value={"choices": ["dog"]}, created_at=T0
        )
    json_null = Value(None, output_field=JSONField())
    first, second = Annotation.objects.filter(item=items[0]).order_by("id")[:2]
    Annotation.objects.filter(pk=first.pk).update(proposal_value=json_null, proposal_model_version_id=None)
    Annotation.objects.filter(pk=second.pk).update(proposal_value=json_null, proposal_model_version_id=4)
    return project


def _export_text(project, fmt, *, labeled_only):
    with CaptureQueriesContext(connection) as captured:
        text = "".join(exporting.export_stream(project=project, format=fmt, labeled_only=labeled_only))
    return text, [q["sql"] for q in captured.captured_queries]


@pytest.mark.postgres_only
@pytest.mark.parametrize("labeled_only", [False, True])
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
@pytest.mark.parametrize("kind", ["single_label", "multi_label", "image"])
def test_on_postgresql_the_text_path_writes_the_same_bytes_as_the_generic_path(
    kind, fmt, labeled_only, monkeypatch, settings
):
    settings.MEDIA_URL = "/media/"
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    project = _tricky_project(kind)
    fast, fast_queries = _export_text(project, fmt, labeled_only=labeled_only)
    monkeypatch.setattr(postgres, "POSTGRES_TEXT", False)
    generic, generic_queries = _export_text(project, fmt, labeled_only=labeled_only)
    assert any("to_char(" in sql for sql in fast_queries)
    assert not any("to_char(" in sql for sql in generic_queries)
    assert fast == generic
    assert len(fast_queries) == len(generic_queries)


# The command ---------------------------------------------------------------------------------


def test_the_command_writes_the_export_to_a_file(studio, tmp_path):
    target = tmp_path / "out.csv"
    err = io.StringIO()
    call_command("export_project", str(studio.pk), "--format", "csv", "--output", str(target), stderr=err)
    assert target.read_bytes().decode("utf-8") == "".join(export_csv(project=studio))
    assert "Exported 3 items" in err.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_the_command_writes_labeled_items_to_standard_output(studio):
    out = io.StringIO()
    call_command(
        "export_project", str(studio.pk), "--format", "jsonl", "--labeled-only", "--output", "-", stdout=out
    )
    assert [json.loads(line)["external_id"] for line in out.getvalue().splitlines()] == ["t0", "t1"]


def test_the_command_refuses_an_unknown_project():
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_project", "999999", "--format", "json")


# Review and gold ----------------------------------------------------------------------------


def test_reviewed_only_exports_the_items_a_reviewer_decided_and_marks_rejects_and_gold(studio):
    from annotate.gold import item_gold_set
    from annotate.review import review_decide

    reviewer = UserFactory()
    Membership.objects.create(project=studio, user=reviewer, role="reviewer")
    t0 = Item.objects.get(project=studio, external_id="t0")
    cy = Annotation.objects.get(item=t0, annotator__username="cy")
    review_decide(
        project=studio, item_id=t0.pk, reviewer=reviewer, decision="reject", supersedes=None,
        annotation_id=cy.pk, reason="dog? no",
    )  # fmt: skip
    t1 = Item.objects.get(project=studio, external_id="t1")
    review_decide(
        project=studio, item_id=t1.pk, reviewer=reviewer, decision="correct", supersedes=None, value=CAT
    )
    item_gold_set(project=studio, item_id=Item.objects.get(project=studio, external_id="t2").pk, value=CAT)
    for fmt in ("jsonl", "csv"):
        text = "".join(exporting.export_stream(project=studio, format=fmt, reviewed_only=True))
        assert "t1" in text and "t0" not in text and "t2" not in text, fmt
    t0_record, t1_record, t2_record = _items(studio)
    assert t1_record["final_label"] == {"value": CAT, "source": "review"}
    # The reject leaves t0 with ann's and bob's cat: complete no more, but a consensus.
    assert t0_record["final_label"] == {"value": CAT, "source": "consensus"}
    assert [a["rejected"] for a in t0_record["annotations"]] == [False, False, True]
    assert (t2_record["gold"], t2_record["final_label"]) == (True, {"value": CAT, "source": "gold"})
    rows = _csv_rows(studio)
    assert {row["final_source"] for row in rows if row["external_id"] == "t2"} == {"gold"}
    assert {row["gold"] for row in rows if row["external_id"] == "t2"} == {"true"}
