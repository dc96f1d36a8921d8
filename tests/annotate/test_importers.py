import io
import json
import threading
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from annotate import importers, tasks
from annotate.importers import (
    ImportRejected,
    import_csv,
    import_image_zip,
    import_images,
    import_json,
    import_jsonl,
    import_text,
    item_import_run_job,
    item_import_start,
)
from annotate.jobs import ProgressConnection
from annotate.models import Annotation, ImportJob, Item, Project
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

IMAGE = Project.TaskType.IMAGE_CLASSIFICATION


def _file(text: str | bytes) -> io.BytesIO:
    return io.BytesIO(text.encode("utf-8") if isinstance(text, str) else text)


def _image(fmt: str = "PNG", size=(8, 6), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def _zip(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def _media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _stored_counts():
    return Item.objects.count(), Annotation.objects.count(), get_user_model().objects.count()


@pytest.fixture
def project():
    return make_project(labels=["positive", "negative"])


@pytest.fixture
def image_project():
    return make_project(labels=["cat", "dog"], task_type=IMAGE)


@pytest.fixture
def nothing_stored(settings):
    """Asserts, after the test body, that no item, annotation, user or file was added."""
    before = _stored_counts()
    yield
    assert _stored_counts() == before
    assert _media_files(settings) == []


# Text formats -----------------------------------------------------------------------------


def test_csv_imports_rows_from_the_chosen_text_column(project):
    data = "id,body,lang\nr1,Great phone,en\nr2,Terrible battery,en\n"

    result = import_csv(
        project=project, file=_file(data), filename="reviews.csv", text_column="body", id_column="id"
    )

    assert result == importers.ImportResult(items_created=2, annotations_created=0, proposals=0)
    items = list(Item.objects.filter(project=project).order_by("id"))
    assert [(i.external_id, i.text) for i in items] == [("r1", "Great phone"), ("r2", "Terrible battery")]
    assert items[0].metadata == {"lang": "en"}
    assert not items[0].is_complete and items[0].annotation_count == 0


def test_csv_without_id_column_gets_stable_ids_from_file_name_and_line(project):
    data = 'text\nfirst\n"second\nspans two lines"\nthird\n'

    import_csv(project=project, file=_file(data), filename="reviews.csv")

    assert list(Item.objects.order_by("id").values_list("external_id", flat=True)) == [
        "reviews.csv:2",
        "reviews.csv:3",
        "reviews.csv:5",
    ]


def test_tsv_is_read_with_tabs(project):
    import_csv(project=project, file=_file("text\tid\na, b\tx1\n"), filename="reviews.tsv", id_column="id")

    assert Item.objects.get().text == "a, b"


def test_json_imports_an_array_of_objects(project):
    data = json.dumps(
        [
            {"id": "a", "text": "Nice", "source_url": "https://example.org/1"},
            {"id": 7, "text": "Bad"},
            {"text": "No id here"},
        ],
        indent=2,
    )

    result = import_json(project=project, file=_file(data), filename="reviews.json")

    assert result.items_created == 3
    items = list(Item.objects.order_by("id"))
    assert [i.external_id for i in items] == ["a", "7", "reviews.json:3"]
    assert items[0].metadata == {"source_url": "https://example.org/1"}


def test_json_field_names_are_configurable(project):
    data = json.dumps([{"key": "k1", "body": "Hello", "gold": "positive"}])

    import_json(
        project=project,
        file=_file(data),
        filename="x.json",
        text_column="body",
        id_column="key",
        label_column="gold",
    )

    item = Item.objects.get()
    assert (item.external_id, item.text, item.annotation_count) == ("k1", "Hello", 1)


def test_jsonl_imports_one_object_per_line_skipping_blank_lines(project):
    data = '{"id": "a", "text": "one"}\n\n{"id": "b", "text": "two"}\n'

    result = import_jsonl(project=project, file=_file(data), filename="reviews.jsonl")

    assert result.items_created == 2
    assert list(Item.objects.order_by("id").values_list("external_id", "text")) == [
        ("a", "one"),
        ("b", "two"),
    ]


def test_text_imports_one_item_per_non_empty_line(project):
    result = import_text(project=project, file=_file("first line\n\n  \nsecond line\n"), filename="notes.txt")

    assert result.items_created == 2
    assert list(Item.objects.order_by("id").values_list("external_id", "text")) == [
        ("notes.txt:1", "first line"),
        ("notes.txt:4", "second line"),
    ]


def test_crlf_line_endings_become_lf(project):
    data = 'id,text\r\na,"two\r\nlines"\r\nb,plain\r\n'

    import_csv(project=project, file=_file(data), filename="win.csv", id_column="id")
    import_text(project=project, file=_file("one\r\ntwo\r\n"), filename="win.txt")
    import_json(project=project, file=_file('[{"id": "j", "text": "x\\r\\ny"}]'), filename="win.json")

    texts = dict(Item.objects.values_list("external_id", "text"))
    assert texts == {"a": "two\nlines", "b": "plain", "win.txt:1": "one", "win.txt:2": "two", "j": "x\ny"}


def test_a_utf8_byte_order_mark_is_tolerated(project):
    import_csv(project=project, file=_file(b"\xef\xbb\xbftext\nh\xc3\xa9llo\n"), filename="bom.csv")

    assert Item.objects.get().text == "héllo"


def test_labels_import_as_counted_annotations_from_the_named_source():
    project = make_project(labels=["positive", "negative"], overlap=2)
    data = "text,gold\nGreat,positive\nAwful,negative\nMeh,\n"

    result = import_csv(
        project=project, file=_file(data), filename="r.csv", label_column="gold", label_source="crowd-2023"
    )

    assert result.annotations_created == 2
    annotations = list(Annotation.objects.select_related("annotator", "item").order_by("id"))
    assert [(a.item.text, a.value) for a in annotations] == [
        ("Great", {"choices": ["positive"]}),
        ("Awful", {"choices": ["negative"]}),
    ]
    source = annotations[0].annotator
    assert source.username == "source:crowd-2023"
    assert not source.is_active and not source.has_usable_password()
    assert all(a.source == "crowd-2023" and a.counted and not a.late for a in annotations)
    counters = dict(Item.objects.values_list("text", "annotation_count"))
    assert counters == {"Great": 1, "Awful": 1, "Meh": 0}
    assert not Item.objects.filter(is_complete=True).exists()  # overlap 2 asks for a second label


def test_imported_label_completes_an_item_when_overlap_is_one(project):
    import_json(
        project=project, file=_file('[{"text": "a", "label": "positive"}, {"text": "b"}]'), filename="x.json"
    )

    assert dict(Item.objects.values_list("text", "is_complete")) == {"a": True, "b": False}


def test_the_source_user_is_reused_across_imports(project):
    import_json(project=project, file=_file('[{"text": "a", "label": "positive"}]'), filename="one.json")
    import_json(project=project, file=_file('[{"text": "b", "label": "negative"}]'), filename="two.json")

    assert Annotation.objects.values("annotator").distinct().count() == 1
    assert get_user_model().objects.filter(username="source:import").count() == 1


def test_multi_label_csv_lists_names_separated_by_semicolons():
    project = make_project(labels=["sports", "politics", "tech"], multi_label=True)
    data = 'text,labels\nA,"tech; sports"\nB,politics\n'

    import_csv(project=project, file=_file(data), filename="m.csv", label_column="labels")

    values = dict(Annotation.objects.values_list("item__text", "value"))
    assert values == {"A": {"choices": ["sports", "tech"]}, "B": {"choices": ["politics"]}}


def test_multi_label_json_takes_a_list_of_names():
    project = make_project(labels=["sports", "politics", "tech"], multi_label=True)
    data = '{"text": "A", "label": ["tech", "politics"]}\n{"text": "B", "label": []}\n'

    result = import_jsonl(project=project, file=_file(data), filename="m.jsonl")

    assert result.annotations_created == 1
    assert Annotation.objects.get().value == {"choices": ["politics", "tech"]}


def test_predictions_become_item_proposals(project):
    data = json.dumps(
        [
            {"id": "name", "text": "a", "prediction": "positive"},
            {"id": "list", "text": "b", "prediction": ["negative"]},
            {"id": "object", "text": "c", "prediction": {"label": "negative", "score": 0.83}},
            {"id": "choices", "text": "d", "prediction": {"choices": ["positive"], "score": 1}},
            {"id": "none", "text": "e"},
        ]
    )

    result = import_json(project=project, file=_file(data), filename="p.json")

    assert result.proposals == 4
    proposals = dict(Item.objects.values_list("external_id", "proposal"))
    assert proposals == {
        "name": {"value": {"choices": ["positive"]}, "score": None},
        "list": {"value": {"choices": ["negative"]}, "score": None},
        "object": {"value": {"choices": ["negative"]}, "score": 0.83},
        "choices": {"value": {"choices": ["positive"]}, "score": 1.0},
        "none": None,
    }
    assert Annotation.objects.count() == 0


def test_csv_prediction_cells_take_a_name_or_a_json_object(project):
    data = 'text,pred\na,positive\nb,"{""label"": ""negative"", ""score"": 0.4}"\nc,\n'

    import_csv(project=project, file=_file(data), filename="p.csv", prediction_column="pred")

    proposals = dict(Item.objects.values_list("text", "proposal"))
    assert proposals == {
        "a": {"value": {"choices": ["positive"]}, "score": None},
        "b": {"value": {"choices": ["negative"]}, "score": 0.4},
        "c": None,
    }


def test_big_file_is_written_in_batches_and_progress_is_reported(project):
    rows = "".join(f"row {n},{'positive' if n % 2 else 'negative'}\n" for n in range(2500))
    calls = []

    result = import_csv(
        project=project,
        file=_file("text,label\n" + rows),
        filename="big.csv",
        label_column="label",
        progress=lambda done, total: calls.append((done, total)),
    )

    assert result == importers.ImportResult(items_created=2500, annotations_created=2500, proposals=0)
    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert Item.objects.filter(project=project, annotation_count=1, is_complete=True).count() == 2500
    assert set(Annotation.objects.values_list("item_id", flat=True)) == set(
        Item.objects.values_list("id", flat=True)
    )


@pytest.mark.parametrize("postgres_copy", [True, False], ids=["copy-on-postgres", "bulk-create"])
def test_both_write_paths_store_the_same_rows(project, monkeypatch, postgres_copy):
    monkeypatch.setattr(importers, "POSTGRES_COPY", postgres_copy)
    data = json.dumps(
        [
            {"id": "a", "text": "x", "label": "negative", "prediction": {"label": "positive", "score": 0.5}},
            {"id": "b", "text": "y", "note": {"nested": [1, "two"]}},
        ]
    )

    import_json(project=project, file=_file(data), filename="w.json", label_source="gold")

    a, b = Item.objects.order_by("external_id")
    assert (a.text, a.annotation_count, a.is_complete, a.lease_count, a.priority) == ("x", 1, True, 0, 0.0)
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
        import_csv(project=project, file=_file(data), filename="c.csv", label_column="label")

    assert not [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "annotate_')]
    assert Annotation.objects.filter(item__project=project).count() == 2100


@pytest.mark.parametrize("postgres_copy", [True, False], ids=["copy-on-postgres", "bulk-create"])
def test_many_batches_store_every_row_whole_whatever_its_characters(project, monkeypatch, postgres_copy):
    # Batches of 3: on PostgreSQL each goes in with COPY on the writer thread while the next is
    # validated, in COPY's text format, which must escape what would end a column or a line.
    monkeypatch.setattr(importers, "POSTGRES_COPY", postgres_copy)
    monkeypatch.setattr(importers, "BATCH_SIZE", 3)
    awkward = ["tab\there", "back\\slash \\N", "\\.", "line\nbreak", "cr\rhere", "ünïcødé ✓", "plain"]
    lines = [
        {"id": f"id {n}\t{n}", "text": text, "label": "positive" if n % 2 else None, "note": text}
        for n, text in enumerate(awkward)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines)

    result = import_jsonl(project=project, file=_file(data), filename="w.jsonl")

    assert result == importers.ImportResult(items_created=7, annotations_created=3, proposals=0)
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
    monkeypatch.setattr(importers, "POSTGRES_COPY", postgres_copy)
    monkeypatch.setattr(importers, "BATCH_SIZE", 2)
    import_csv(project=project, file=_file("id,text\nold,first\n"), filename="a.csv", id_column="id")
    before = _stored_counts()
    rows = "".join(f"n{n},text {n}\n" for n in range(6))

    # An id that exists is found by the writer (batch 4); a bad label by the validator (line 9).
    with pytest.raises(ImportRejected, match=r"^b.csv, line 8, field 'id': an item with id 'old' already"):
        import_csv(
            project=project, file=_file(f"id,text\n{rows}old,y\nn9,z\n"), filename="b.csv", id_column="id"
        )
    labelled = "".join(f"c{n},text {n},\n" for n in range(6)) + "c6,y,negative\nc7,z,meh\n"
    with pytest.raises(ImportRejected, match=r"^c.csv, line 9, field 'label': unknown label 'meh'"):
        import_csv(
            project=project,
            file=_file(f"id,text,label\n{labelled}"),
            filename="c.csv",
            id_column="id",
            label_column="label",
        )

    assert _stored_counts() == before


@pytest.mark.postgres_only
def test_a_row_the_database_refuses_in_a_late_batch_leaves_nothing(project, monkeypatch):
    # PostgreSQL's jsonb holds no \u0000: the writer thread's COPY of the third batch fails.
    monkeypatch.setattr(importers, "BATCH_SIZE", 2)
    lines = [{"text": f"t{n}", "note": "\u0000" if n == 5 else "ok"} for n in range(7)]
    before = _stored_counts()

    with pytest.raises(ImportRejected, match=r"^z.jsonl: the database refused the items, nothing was stored"):
        import_jsonl(
            project=project, file=_file("".join(json.dumps(x) + "\n" for x in lines)), filename="z.jsonl"
        )

    assert _stored_counts() == before
    assert Item.objects.filter(project=project).count() == 0  # the connection is usable again


# Text formats: refusals (each leaves nothing behind) -------------------------------------


def test_unknown_label_is_refused_naming_file_line_field_and_the_labels(project, nothing_stored):
    data = "text,label\nGood,positive\nSo-so,meh\n"

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=_file(data), filename="reviews.csv", label_column="label")

    assert str(exc.value) == (
        "reviews.csv, line 3, field 'label': unknown label 'meh';"
        " this project's labels are: positive, negative"
    )


def test_unknown_prediction_label_is_refused(project, nothing_stored):
    data = '[{"text": "a", "prediction": {"label": "maybe", "score": 0.5}}]'

    with pytest.raises(
        ImportRejected, match=r"p.json, item 1 \(line 1\), field 'prediction': unknown label 'maybe'"
    ):
        import_json(project=project, file=_file(data), filename="p.json")


def test_second_label_in_a_single_label_project_is_refused(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"x.jsonl, line 1, field 'label': this project is single-label"):
        import_jsonl(
            project=project,
            file=_file('{"text": "a", "label": ["positive", "negative"]}'),
            filename="x.jsonl",
        )


def test_empty_text_is_refused(project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=_file("id,text\na,fine\nb,  \n"), filename="r.csv", id_column="id")

    assert str(exc.value) == "r.csv, line 3, field 'text': the text is empty"


def test_bad_utf8_is_refused_naming_the_line(project, nothing_stored):
    data = b"text\nfine\n" + b"caf\xe9 latin-1\n"

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=_file(data), filename="latin.csv")

    assert str(exc.value) == "latin.csv, line 3: not UTF-8 (byte 0xe9 at column 4); save the file as UTF-8"


def test_malformed_json_is_refused_naming_line_and_column(project, nothing_stored):
    data = '[\n  {"text": "a"},\n  {"text": "b",}\n]'

    with pytest.raises(ImportRejected) as exc:
        import_json(project=project, file=_file(data), filename="bad.json")

    assert str(exc.value).startswith("bad.json, line 3, column 16: malformed JSON:")


def test_json_that_is_not_an_array_is_refused(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"obj.json: expected a JSON array of objects"):
        import_json(project=project, file=_file('{"text": "a"}'), filename="obj.json")


def test_json_element_that_is_not_an_object_is_refused_naming_item_and_line(project, nothing_stored):
    with pytest.raises(
        ImportRejected, match=r"^x.json, item 2 \(line 3\): expected an object, not a string$"
    ):
        import_json(project=project, file=_file('[\n {"text": "a"},\n "b"\n]'), filename="x.json")


def test_malformed_jsonl_line_is_refused_naming_the_line(project, nothing_stored):
    data = '{"text": "a"}\n{"text": "b"}\n{"text": oops}\n'

    with pytest.raises(ImportRejected) as exc:
        import_jsonl(project=project, file=_file(data), filename="x.jsonl")

    assert str(exc.value) == "x.jsonl, line 3: malformed JSON at column 10: Expecting value"


def test_malformed_csv_is_refused_naming_the_line(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"^q.csv, line 3: malformed CSV: "):
        import_csv(project=project, file=_file('text\nok\n"bad"quote\n'), filename="q.csv")


def test_missing_text_column_is_refused_naming_the_columns_found(project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=_file("id,body\n1,hello\n"), filename="r.csv")

    assert str(exc.value) == "r.csv, line 1: no column 'text'; the columns are: id, body"


def test_missing_text_field_in_json_is_refused_naming_the_fields_found(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"^x.jsonl, line 1: no field 'text'; its fields are: id, body$"):
        import_jsonl(project=project, file=_file('{"id": 1, "body": "hello"}'), filename="x.jsonl")


def test_duplicate_id_within_the_file_is_refused_naming_both_lines(project, nothing_stored):
    data = "id,text\nabc,one\nxyz,two\n" + "".join(f"n{n},filler\n" for n in range(3)) + "abc,again\n"

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=_file(data), filename="r.csv", id_column="id")

    assert str(exc.value) == "r.csv, line 7, field 'id': 'abc' repeats line 2"


def test_duplicate_id_in_json_names_both_items(project, nothing_stored):
    data = '[{"id": "a", "text": "x"},\n {"id": "a", "text": "y"}]'

    with pytest.raises(ImportRejected) as exc:
        import_json(project=project, file=_file(data), filename="d.json")

    assert str(exc.value) == "d.json, item 2 (line 2), field 'id': 'a' repeats item 1 (line 1)"


def test_id_already_in_the_project_is_refused_naming_its_line(project, settings):
    import_csv(project=project, file=_file("id,text\nold,first\n"), filename="a.csv", id_column="id")
    before = _stored_counts()

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=_file("id,text\nnew,x\nold,y\n"), filename="b.csv", id_column="id")

    assert str(exc.value) == "b.csv, line 3, field 'id': an item with id 'old' already exists in this project"
    assert _stored_counts() == before


def test_importing_the_same_text_file_twice_is_refused(project):
    import_text(project=project, file=_file("a\nb\n"), filename="n.txt")

    with pytest.raises(ImportRejected, match=r"n.txt, line 1: an item with id 'n.txt:1' already exists"):
        import_text(project=project, file=_file("a\nb\n"), filename="n.txt")
    assert Item.objects.count() == 2


def test_text_formats_are_refused_for_an_image_project(image_project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_csv(project=image_project, file=_file("text\na\n"), filename="r.csv")

    assert "is an image classification project: import images" in str(exc.value)


# Images -----------------------------------------------------------------------------------


def test_images_import_with_their_names_as_external_ids(image_project, settings):
    files = [
        ("cat.png", _file(_image("PNG", (8, 6)))),
        ("dog.jpg", _file(_image("JPEG", (10, 4)))),
        ("scan.dat", _file(_image("PNG", (3, 5)))),  # Pillow decides, not the name
    ]

    result = import_images(project=image_project, files=files)

    assert result.items_created == 3
    items = {i.external_id: i for i in Item.objects.filter(project=image_project)}
    assert {k: (i.width, i.height) for k, i in items.items()} == {
        "cat.png": (8, 6),
        "dog.jpg": (10, 4),
        "scan.dat": (3, 5),
    }
    assert all(i.image.name.startswith(f"projects/{image_project.id}/") for i in items.values())
    assert items["scan.dat"].image.name.endswith("scan.png")
    assert items["dog.jpg"].image.read() == files[1][1].getvalue()  # upright already: the bytes as sent
    assert len(_media_files(settings)) == 3


def test_exif_rotated_jpeg_is_stored_upright_with_swapped_size(image_project):
    picture = Image.new("RGB", (40, 20), (255, 0, 0))
    picture.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif, quality=95)

    import_images(project=image_project, files=[("phone.jpg", _file(buffer.getvalue()))])

    item = Item.objects.get()
    assert (item.width, item.height) == (20, 40)
    with default_storage.open(item.image.name) as stored, Image.open(stored) as upright:
        assert upright.format == "JPEG"
        assert upright.size == (20, 40)
        assert upright.getexif().get(274, 1) == 1
        top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # red went to the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_non_web_image_formats_are_stored_as_png(image_project):
    import_images(project=image_project, files=[("scan.tiff", _file(_image("TIFF", (7, 9))))])

    item = Item.objects.get()
    assert item.image.name.endswith(".png")
    with default_storage.open(item.image.name) as stored, Image.open(stored) as image:
        assert (image.format, image.size) == ("PNG", (7, 9))


def test_zip_imports_images_and_ignores_folders_macos_files_and_dotfiles(image_project, settings):
    archive = _zip(
        {
            "digits/": b"",
            "digits/3/img_12.png": _image("PNG", (4, 4)),
            "digits/4/img_1.jpg": _image("JPEG", (6, 2)),
            "__MACOSX/digits/3/._img_12.png": b"\x00\x05\x16\x07 resource fork",
            "digits/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )

    result = import_image_zip(project=image_project, file=archive, filename="digits.zip")

    assert result.items_created == 2
    sizes = dict(Item.objects.values_list("external_id", "width"))
    assert sizes == {"digits/3/img_12.png": 4, "digits/4/img_1.jpg": 6}
    assert len(_media_files(settings)) == 2


def test_images_are_refused_for_a_text_project(project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_images(project=project, files=[("a.png", _file(_image()))])

    assert "is a text classification project: import text" in str(exc.value)


@pytest.mark.parametrize("unsafe", ["../evil.png", "/abs.png", "a/../../evil.png", "C:\\evil.png"])
def test_zip_with_an_unsafe_path_is_refused_by_name(image_project, nothing_stored, unsafe):
    archive = _zip({"fine.png": _image(), unsafe: _image()})

    with pytest.raises(ImportRejected) as exc:
        import_image_zip(project=image_project, file=archive, filename="x.zip")

    assert str(exc.value).startswith(f"x.zip, entry {unsafe!r}: unsafe path")


def test_zip_with_a_non_image_entry_is_refused_naming_it_and_its_written_files_deleted(
    image_project, nothing_stored
):
    archive = _zip({"a.png": _image(), "b.png": _image(), "notes.txt": b"hello"})

    with pytest.raises(ImportRejected) as exc:
        import_image_zip(project=image_project, file=archive, filename="x.zip")

    assert str(exc.value).startswith("x.zip, entry 'notes.txt': not an image (JPEG, PNG")


def test_a_png_that_is_not_an_image_is_refused_by_name(image_project, nothing_stored):
    files = [("ok.png", _file(_image())), ("fake.png", _file(b"\x89PNG\r\n\x1a\n but not really"))]

    with pytest.raises(ImportRejected, match=r"^file 'fake.png': "):
        import_images(project=image_project, files=files)


def test_truncated_image_is_refused_by_name(image_project, nothing_stored):
    data = _image("JPEG", (64, 64))

    with pytest.raises(ImportRejected, match=r"^file 'cut.jpg': "):
        import_images(project=image_project, files=[("cut.jpg", _file(data[: len(data) // 2]))])


def test_image_over_the_pixel_limit_is_refused_by_name(image_project, nothing_stored, settings):
    settings.LABELLOOP_MAX_IMAGE_PIXELS = 100
    files = [("small.png", _file(_image("PNG", (10, 10)))), ("big.png", _file(_image("PNG", (11, 10))))]

    with pytest.raises(ImportRejected) as exc:
        import_images(project=image_project, files=files)

    assert str(exc.value) == "file 'big.png': 11x10 is 110 pixels, over the limit of 100"


def test_decompression_bomb_is_refused_by_name(image_project, nothing_stored, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises above twice this

    with pytest.raises(ImportRejected, match=r"^x.zip, entry 'bomb.png': refused as a decompression bomb"):
        import_image_zip(
            project=image_project, file=_zip({"bomb.png": _image("PNG", (30, 30))}), filename="x.zip"
        )


def test_image_name_already_in_the_project_is_refused(image_project, settings):
    import_images(project=image_project, files=[("a.png", _file(_image()))])

    with pytest.raises(
        ImportRejected, match=r"^x.zip, entry 'a.png': an item with id 'a.png' already exists"
    ):
        import_image_zip(project=image_project, file=_zip({"a.png": _image()}), filename="x.zip")
    assert Item.objects.count() == 1
    assert len(_media_files(settings)) == 1


def test_files_are_deleted_when_the_database_refuses_the_rows(image_project, settings, monkeypatch):
    # As when a concurrent import stores the same id between the check and the insert.
    import_images(project=image_project, files=[("a.png", _file(_image()))])
    monkeypatch.setattr(importers, "_ids_check", lambda **kwargs: None)

    with pytest.raises(ImportRejected, match="the database refused the items, nothing was stored"):
        import_images(project=image_project, files=[("b.png", _file(_image())), ("a.png", _file(_image()))])

    assert list(Item.objects.values_list("external_id", flat=True)) == ["a.png"]
    assert len(_media_files(settings)) == 1


def test_zip_that_is_not_a_zip_is_refused(image_project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"^x.zip: not a zip file$"):
        import_image_zip(project=image_project, file=_file(b"PK but no"), filename="x.zip")


# Background jobs ------------------------------------------------------------------------------


def _start(project, data: str | bytes, *, filename="r.csv", format="csv", options=None):
    return item_import_start(
        project=project,
        uploaded_file=_file(data),
        filename=filename,
        format=format,
        options=options or {},
        created_by=UserFactory(),
    )


def test_small_upload_is_imported_at_once_and_the_finished_job_returned(project, settings):
    job = _start(project, "text,label\na,positive\nb,\n", options={"label_column": "label"})

    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.items_created, job.progress, job.rows_done, job.rows_total) == (2, 100, 2, 2)
    assert job.finished_at is not None and job.error == ""
    assert Item.objects.filter(project=project).count() == 2
    assert Annotation.objects.count() == 1
    assert _media_files(settings) == []  # the upload is deleted once the job ends


def test_small_upload_that_is_rejected_returns_a_failed_job(project, settings):
    job = _start(project, "text\nok\n\xff\n".encode("latin-1"))

    assert job.status == ImportJob.Status.FAILED
    assert job.error == "r.csv, line 3: not UTF-8 (byte 0xff at column 1); save the file as UTF-8"
    assert Item.objects.count() == 0
    assert _media_files(settings) == []


@pytest.fixture
def celery_eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the Celery app reads Django's settings on each lookup


def test_big_upload_is_queued_and_dispatched_on_commit(
    project, settings, monkeypatch, django_capture_on_commit_callbacks, celery_eager
):
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 3)
    data = "id,text\n" + "".join(f"r{n},text {n}\n" for n in range(5))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = _start(project, data)
    assert job.status == ImportJob.Status.QUEUED
    assert len(callbacks) == 1 and Item.objects.count() == 0
    assert job.upload.name.startswith("imports/") and len(_media_files(settings)) == 1

    callbacks[0]()  # the commit: Celery runs the task (eagerly here)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.progress, job.rows_done, job.rows_total, job.items_created) == (100, 5, 5, 5)
    assert Item.objects.filter(project=project).count() == 5
    assert _media_files(settings) == []


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_job_writes_its_progress_to_the_row_as_it_goes(monkeypatch):
    project = make_project(labels=["positive", "negative"])
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 10)
    monkeypatch.setattr(tasks.item_import_run, "delay_on_commit", lambda job_id: None)
    job = _start(project, "text\n" + "".join(f"text {n}\n" for n in range(2100)))
    written = []
    update = ProgressConnection.update
    monkeypatch.setattr(
        ProgressConnection,
        "update",
        lambda self, model, pk, **fields: written.append(fields) or update(self, model, pk, **fields),
    )

    item_import_run_job(job_id=job.id)

    heartbeats = [fields.pop("heartbeat_at") for fields in written]
    assert written == [
        {"rows_done": 1000, "rows_total": 2100, "progress": 47},
        {"rows_done": 2000, "rows_total": 2100, "progress": 95},
        {"rows_done": 2100, "rows_total": 2100, "progress": 100},
    ]
    assert heartbeats == sorted(heartbeats) and heartbeats[0] >= job.created_at
    job.refresh_from_db()
    assert (job.status, job.progress, job.rows_done, job.rows_total) == ("succeeded", 100, 2100, 2100)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_job_progress_is_seen_by_others_while_its_import_is_still_open(monkeypatch):
    project = make_project(labels=["positive", "negative"])
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 10)
    monkeypatch.setattr(importers, "BATCH_SIZE", 500)
    monkeypatch.setattr(tasks.item_import_run, "delay_on_commit", lambda job_id: None)
    job = _start(project, "text\n" + "".join(f"text {n}\n" for n in range(2100)))
    batches, seen = [], []

    def look_from_outside() -> tuple[int, int]:
        # Another thread: another connection, outside the import's transaction.
        found = []

        def look():
            try:
                found.append(
                    (ImportJob.objects.get(pk=job.id).rows_done, Item.objects.filter(project=project).count())
                )
            finally:
                connections.close_all()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
        return found[0]

    copy = importers._batch_copy

    def copy_then_look(using, project_, rows, *args):
        copy(using, project_, rows, *args)
        batches.append(len(rows))
        if len(batches) == 3:  # row 1,000 (progress is reported every 1,000) was validated by now
            deadline = time.monotonic() + 10
            while look_from_outside()[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(look_from_outside())

    monkeypatch.setattr(importers, "_batch_copy", copy_then_look)

    item_import_run_job(job_id=job.id)

    # The progress (validation may be a batch ahead), while no item is committed yet.
    assert seen in ([(1000, 0)], [(2000, 0)])
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.items_created) == ("succeeded", 2100, 2100)


def test_sweeper_fails_an_import_job_whose_worker_was_lost(project, settings, monkeypatch):
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 1)
    now = timezone.now()
    # Past the threshold of either database: LABELLOOP_IMPORT_STALE_SECONDS on PostgreSQL, the
    # import task's time limit on SQLite (no heartbeat while the import holds the one writer).
    silent = timedelta(seconds=max(settings.LABELLOOP_IMPORT_STALE_SECONDS, tasks.IMPORT_TIME_LIMIT + 60))
    lost, alive, queued = (_start(project, "text\na\nb\n") for _ in range(3))
    ImportJob.objects.filter(pk=lost.pk).update(
        status="running", heartbeat_at=now - silent - timedelta(seconds=5)
    )
    ImportJob.objects.filter(pk=alive.pk).update(status="running", heartbeat_at=now - timedelta(seconds=5))
    upload = lost.upload.name
    assert default_storage.exists(upload)

    assert importers.import_jobs_sweep(now=now) == [lost.pk]

    lost.refresh_from_db()
    assert (lost.status, lost.upload.name) == ("failed", "")
    assert lost.error.startswith("the import stopped when its worker was lost; nothing was stored")
    assert not default_storage.exists(upload)
    assert [j.status for j in ImportJob.objects.filter(pk__in=[alive.pk, queued.pk]).order_by("pk")] == [
        "running",
        "queued",
    ]
    assert importers.import_jobs_sweep(now=now) == []  # a failed job stays failed, once


def test_a_claimed_import_job_has_a_heartbeat(project, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 1)
    with django_capture_on_commit_callbacks(execute=False):
        job = _start(project, "text\na\nb\n")
    assert job.heartbeat_at is None

    item_import_run_job(job_id=job.id)

    job.refresh_from_db()
    assert job.status == "succeeded" and job.heartbeat_at >= job.created_at


def test_failed_background_job_stores_nothing_and_records_the_error(
    project, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 1)
    with django_capture_on_commit_callbacks(execute=False):
        job = _start(project, "text,label\na,positive\nb,meh\n", options={"label_column": "label"})
    before = _stored_counts()

    tasks.item_import_run(job.id)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith("r.csv, line 3, field 'label': unknown label 'meh'")
    assert job.finished_at is not None and job.items_created == 0
    assert _stored_counts() == before
    assert _media_files(settings) == []


def test_a_job_runs_once_even_when_its_task_is_delivered_twice(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(importers, "SYNC_ROW_LIMIT", 1)
    with django_capture_on_commit_callbacks(execute=False):
        job = _start(project, "text\na\nb\n")

    tasks.item_import_run.apply(args=[job.id])  # the Celery wrapper, eagerly
    tasks.item_import_run.apply(args=[job.id])

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert Item.objects.count() == 2


def test_a_list_of_images_is_stored_as_one_zip_and_imported(image_project, settings):
    job = item_import_start(
        project=image_project,
        uploaded_file=[("a.png", _file(_image())), ("sub/b.png", _file(_image()))],
        filename="upload",
        format="images",
        options={},
        created_by=None,
    )

    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.format == "zip"
    assert set(Item.objects.values_list("external_id", flat=True)) == {"a.png", "sub/b.png"}
    assert len(_media_files(settings)) == 2  # the images, not the upload


def test_import_job_with_images_over_the_sync_limit_is_queued(
    image_project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(importers, "SYNC_IMAGE_LIMIT", 1)
    archive = _zip({"a.png": _image(), "b.png": _image()})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = item_import_start(
            project=image_project,
            uploaded_file=archive,
            filename="x.zip",
            format="zip",
            options={},
            created_by=None,
        )

    assert job.status == ImportJob.Status.QUEUED
    assert len(callbacks) == 1
