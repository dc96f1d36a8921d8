"""The text formats (CSV, JSON, JSON Lines, plain text): what each stores, and what each refuses."""

import json

import pytest
from django.contrib.auth import get_user_model

from annotate.importing import (
    ImportRejected,
    ImportResult,
    import_csv,
    import_json,
    import_jsonl,
    import_text,
)
from annotate.models import Annotation, Item
from tests.annotate import uploads
from tests.annotate.uploads import file, stored_counts
from tests.factories import make_project

pytestmark = pytest.mark.django_db

project = uploads.project
image_project = uploads.image_project
nothing_stored = uploads.nothing_stored


# Text formats -----------------------------------------------------------------------------


def test_csv_imports_rows_from_the_chosen_text_column(project):
    data = "id,body,lang\nr1,Great phone,en\nr2,Terrible battery,en\n"

    result = import_csv(
        project=project, file=file(data), filename="reviews.csv", text_column="body", id_column="id"
    )

    assert result == ImportResult(items_created=2, annotations_created=0, proposals=0)
    items = list(Item.objects.filter(project=project).order_by("id"))
    assert [(i.external_id, i.text) for i in items] == [("r1", "Great phone"), ("r2", "Terrible battery")]
    assert items[0].metadata == {"lang": "en"}
    assert not items[0].is_complete and items[0].annotation_count == 0


def test_csv_without_id_column_gets_stable_ids_from_file_name_and_line(project):
    data = 'text\nfirst\n"second\nspans two lines"\nthird\n'

    import_csv(project=project, file=file(data), filename="reviews.csv")

    assert list(Item.objects.order_by("id").values_list("external_id", flat=True)) == [
        "reviews.csv:2",
        "reviews.csv:3",
        "reviews.csv:5",
    ]


def test_tsv_is_read_with_tabs(project):
    import_csv(project=project, file=file("text\tid\na, b\tx1\n"), filename="reviews.tsv", id_column="id")

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

    result = import_json(project=project, file=file(data), filename="reviews.json")

    assert result.items_created == 3
    items = list(Item.objects.order_by("id"))
    assert [i.external_id for i in items] == ["a", "7", "reviews.json:3"]
    assert items[0].metadata == {"source_url": "https://example.org/1"}


def test_json_field_names_are_configurable(project):
    data = json.dumps([{"key": "k1", "body": "Hello", "gold": "positive"}])

    import_json(
        project=project,
        file=file(data),
        filename="x.json",
        text_column="body",
        id_column="key",
        label_column="gold",
    )

    item = Item.objects.get()
    assert (item.external_id, item.text, item.annotation_count) == ("k1", "Hello", 1)


def test_jsonl_imports_one_object_per_line_skipping_blank_lines(project):
    data = '{"id": "a", "text": "one"}\n\n{"id": "b", "text": "two"}\n'

    result = import_jsonl(project=project, file=file(data), filename="reviews.jsonl")

    assert result.items_created == 2
    assert list(Item.objects.order_by("id").values_list("external_id", "text")) == [
        ("a", "one"),
        ("b", "two"),
    ]


def test_text_imports_one_item_per_non_empty_line(project):
    result = import_text(project=project, file=file("first line\n\n  \nsecond line\n"), filename="notes.txt")

    assert result.items_created == 2
    assert list(Item.objects.order_by("id").values_list("external_id", "text")) == [
        ("notes.txt:1", "first line"),
        ("notes.txt:4", "second line"),
    ]


def test_crlf_line_endings_become_lf(project):
    data = 'id,text\r\na,"two\r\nlines"\r\nb,plain\r\n'

    import_csv(project=project, file=file(data), filename="win.csv", id_column="id")
    import_text(project=project, file=file("one\r\ntwo\r\n"), filename="win.txt")
    import_json(project=project, file=file('[{"id": "j", "text": "x\\r\\ny"}]'), filename="win.json")

    texts = dict(Item.objects.values_list("external_id", "text"))
    assert texts == {"a": "two\nlines", "b": "plain", "win.txt:1": "one", "win.txt:2": "two", "j": "x\ny"}


def test_a_utf8_byte_order_mark_is_tolerated(project):
    import_csv(project=project, file=file(b"\xef\xbb\xbftext\nh\xc3\xa9llo\n"), filename="bom.csv")

    assert Item.objects.get().text == "héllo"


def test_labels_import_as_counted_annotations_from_the_named_source():
    project = make_project(labels=["positive", "negative"], overlap=2)
    data = "text,gold\nGreat,positive\nAwful,negative\nMeh,\n"

    result = import_csv(
        project=project, file=file(data), filename="r.csv", label_column="gold", label_source="crowd-2023"
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
        project=project, file=file('[{"text": "a", "label": "positive"}, {"text": "b"}]'), filename="x.json"
    )

    assert dict(Item.objects.values_list("text", "is_complete")) == {"a": True, "b": False}


def test_the_source_user_is_reused_across_imports(project):
    import_json(project=project, file=file('[{"text": "a", "label": "positive"}]'), filename="one.json")
    import_json(project=project, file=file('[{"text": "b", "label": "negative"}]'), filename="two.json")

    assert Annotation.objects.values("annotator").distinct().count() == 1
    assert get_user_model().objects.filter(username="source:import").count() == 1


def test_multi_label_csv_lists_names_separated_by_semicolons():
    project = make_project(labels=["sports", "politics", "tech"], multi_label=True)
    data = 'text,labels\nA,"tech; sports"\nB,politics\n'

    import_csv(project=project, file=file(data), filename="m.csv", label_column="labels")

    values = dict(Annotation.objects.values_list("item__text", "value"))
    assert values == {"A": {"choices": ["sports", "tech"]}, "B": {"choices": ["politics"]}}


def test_multi_label_json_takes_a_list_of_names():
    project = make_project(labels=["sports", "politics", "tech"], multi_label=True)
    data = '{"text": "A", "label": ["tech", "politics"]}\n{"text": "B", "label": []}\n'

    result = import_jsonl(project=project, file=file(data), filename="m.jsonl")

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

    result = import_json(project=project, file=file(data), filename="p.json")

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

    import_csv(project=project, file=file(data), filename="p.csv", prediction_column="pred")

    proposals = dict(Item.objects.values_list("text", "proposal"))
    assert proposals == {
        "a": {"value": {"choices": ["positive"]}, "score": None},
        "b": {"value": {"choices": ["negative"]}, "score": 0.4},
        "c": None,
    }


# Text formats: refusals (each leaves nothing behind) -------------------------------------


def test_unknown_label_is_refused_naming_file_line_field_and_the_labels(project, nothing_stored):
    data = "text,label\nGood,positive\nSo-so,meh\n"

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=file(data), filename="reviews.csv", label_column="label")

    assert str(exc.value) == (
        "reviews.csv, line 3, field 'label': unknown label 'meh';"
        " this project's labels are: positive, negative"
    )


def test_unknown_prediction_label_is_refused(project, nothing_stored):
    data = '[{"text": "a", "prediction": {"label": "maybe", "score": 0.5}}]'

    with pytest.raises(
        ImportRejected, match=r"p.json, item 1 \(line 1\), field 'prediction': unknown label 'maybe'"
    ):
        import_json(project=project, file=file(data), filename="p.json")


def test_second_label_in_a_single_label_project_is_refused(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"x.jsonl, line 1, field 'label': this project is single-label"):
        import_jsonl(
            project=project,
            file=file('{"text": "a", "label": ["positive", "negative"]}'),
            filename="x.jsonl",
        )


def test_empty_text_is_refused(project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=file("id,text\na,fine\nb,  \n"), filename="r.csv", id_column="id")

    assert str(exc.value) == "r.csv, line 3, field 'text': the text is empty"


def test_bad_utf8_is_refused_naming_the_line(project, nothing_stored):
    data = b"text\nfine\n" + b"caf\xe9 latin-1\n"

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=file(data), filename="latin.csv")

    assert str(exc.value) == "latin.csv, line 3: not UTF-8 (byte 0xe9 at column 4); save the file as UTF-8"


def test_malformed_json_is_refused_naming_line_and_column(project, nothing_stored):
    data = '[\n  {"text": "a"},\n  {"text": "b",}\n]'

    with pytest.raises(ImportRejected) as exc:
        import_json(project=project, file=file(data), filename="bad.json")

    assert str(exc.value).startswith("bad.json, line 3, column 16: malformed JSON:")


def test_json_that_is_not_an_array_is_refused(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"obj.json: expected a JSON array of objects"):
        import_json(project=project, file=file('{"text": "a"}'), filename="obj.json")


def test_json_element_that_is_not_an_object_is_refused_naming_item_and_line(project, nothing_stored):
    with pytest.raises(
        ImportRejected, match=r"^x.json, item 2 \(line 3\): expected an object, not a string$"
    ):
        import_json(project=project, file=file('[\n {"text": "a"},\n "b"\n]'), filename="x.json")


def test_malformed_jsonl_line_is_refused_naming_the_line(project, nothing_stored):
    data = '{"text": "a"}\n{"text": "b"}\n{"text": oops}\n'

    with pytest.raises(ImportRejected) as exc:
        import_jsonl(project=project, file=file(data), filename="x.jsonl")

    assert str(exc.value) == "x.jsonl, line 3: malformed JSON at column 10: Expecting value"


def test_malformed_csv_is_refused_naming_the_line(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"^q.csv, line 3: malformed CSV: "):
        import_csv(project=project, file=file('text\nok\n"bad"quote\n'), filename="q.csv")


def test_missing_text_column_is_refused_naming_the_columns_found(project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=file("id,body\n1,hello\n"), filename="r.csv")

    assert str(exc.value) == "r.csv, line 1: no column 'text'; the columns are: id, body"


def test_missing_text_field_in_json_is_refused_naming_the_fields_found(project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"^x.jsonl, line 1: no field 'text'; its fields are: id, body$"):
        import_jsonl(project=project, file=file('{"id": 1, "body": "hello"}'), filename="x.jsonl")


def test_duplicate_id_within_the_file_is_refused_naming_both_lines(project, nothing_stored):
    data = "id,text\nabc,one\nxyz,two\n" + "".join(f"n{n},filler\n" for n in range(3)) + "abc,again\n"

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=file(data), filename="r.csv", id_column="id")

    assert str(exc.value) == "r.csv, line 7, field 'id': 'abc' repeats line 2"


def test_duplicate_id_in_json_names_both_items(project, nothing_stored):
    data = '[{"id": "a", "text": "x"},\n {"id": "a", "text": "y"}]'

    with pytest.raises(ImportRejected) as exc:
        import_json(project=project, file=file(data), filename="d.json")

    assert str(exc.value) == "d.json, item 2 (line 2), field 'id': 'a' repeats item 1 (line 1)"


def test_id_already_in_the_project_is_refused_naming_its_line(project, settings):
    import_csv(project=project, file=file("id,text\nold,first\n"), filename="a.csv", id_column="id")
    before = stored_counts()

    with pytest.raises(ImportRejected) as exc:
        import_csv(project=project, file=file("id,text\nnew,x\nold,y\n"), filename="b.csv", id_column="id")

    assert str(exc.value) == "b.csv, line 3, field 'id': an item with id 'old' already exists in this project"
    assert stored_counts() == before


def test_importing_the_same_text_file_twice_is_refused(project):
    import_text(project=project, file=file("a\nb\n"), filename="n.txt")

    with pytest.raises(ImportRejected, match=r"n.txt, line 1: an item with id 'n.txt:1' already exists"):
        import_text(project=project, file=file("a\nb\n"), filename="n.txt")
    assert Item.objects.count() == 2


def test_a_csv_of_texts_is_refused_for_an_image_project_naming_the_image_url_column(
    image_project, nothing_stored
):
    with pytest.raises(ImportRejected) as exc:
        import_csv(project=image_project, file=file("text\na\n"), filename="r.csv")

    assert str(exc.value).startswith("r.csv, line 1: no column 'image_url' (this is an image project")
    assert str(exc.value).endswith("the columns are: text")


def test_plain_text_is_refused_for_an_image_project(image_project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_text(project=image_project, file=file("a\n"), filename="r.txt")

    assert "is an image classification project: import images" in str(exc.value)
