"""CoNLL and spaCy JSONL for text-span projects: exports read back by a CoNLL reader written here
and by json, imports as labels and as predictions, round trips into a new project (exact, except
the spans CoNLL had to widen or leave out, which it reports), and bad input refused with its
place named and nothing stored."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotate import exporting, importing
from annotate.models import Annotation, FinalSource, Item, Membership, Project, Review, Tally
from annotate.quality.rebuild import project_quality_rebuild
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

LABELS = ("PER", "ORG", "Home Town")
TEXTS = {
    "d1": "Ada Lovelace met Charles Babbage in London 👍🏽.",
    "d2": "Café Zoë\r\nworks at 東京 Labs",  # e + U+0301 in Café; CRLF, stored as LF
    "d3": "Nothing to see here.",
}


def _span(text: str, part: str, label: str, occurrence: int = 0) -> dict:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(part, start + 1)
    return {"start": start, "end": start + len(part), "label": label}


def _stored_text(external_id: str) -> str:
    return TEXTS[external_id].replace("\r\n", "\n")


def _values() -> dict[str, dict]:
    d1, d2 = _stored_text("d1"), _stored_text("d2")
    return {
        "d1": {
            "spans": [
                _span(d1, "Ada Lovelace", "PER"),
                _span(d1, "Charles Babbage", "PER"),
                _span(d1, "London", "Home Town"),
            ]
        },
        "d2": {"spans": [_span(d2, "Zoë", "PER"), _span(d2, "東京 Labs", "ORG")]},
        "d3": {"spans": []},
    }


def _spans_project(*, items: bool = True, **fields) -> Project:
    project = make_project(labels=LABELS, task_type=Project.TaskType.TEXT_SPANS, **fields)
    if items:
        lines = "".join(json.dumps({"id": key, "text": text}) + "\n" for key, text in TEXTS.items())
        importing.import_jsonl(project=project, file=io.BytesIO(lines.encode()), filename="texts.jsonl")
    return project


def _label(project: Project, values: dict[str, dict]) -> None:
    annotator = UserFactory()
    from annotate.projects import membership_add

    membership_add(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    for _ in values:
        item = assignment_next(project=project, annotator=annotator).item
        annotation_submit(
            project=project, item_id=item.pk, annotator=annotator, value=values[item.external_id]
        )


@pytest.fixture
def labeled() -> Project:
    project = _spans_project()
    _label(project, _values())
    return project


def _export(project: Project, format: str) -> str:
    return "".join(exporting.export_stream(project=project, format=format))


def _finals(project: Project) -> dict[str, dict]:
    return dict(Item.objects.filter(project=project).values_list("external_id", "final_value"))


def _stored(project: Project) -> tuple:
    items = Item.objects.filter(project=project).order_by("id")
    return (
        Annotation.objects.filter(project=project).count(),
        list(items.values_list("id", "external_id", "text", "final_value", "proposal", "annotation_count")),
        sorted(Tally.objects.filter(project=project).values_list("kind", "key", "n")),
    )


def _assert_kept_right(project: Project) -> None:
    def tallies():
        return sorted(Tally.objects.filter(project=project).exclude(n=0).values_list("kind", "key", "n"))

    kept, finals = tallies(), _finals(project)
    models = {"Item": Item, "Annotation": Annotation, "Label": project.labels.model, "Tally": Tally}
    project_quality_rebuild(project=project, models={**models, "Review": Review})
    assert tallies() == kept
    assert _finals(project) == finals


def _read_conll(text: str) -> list[list[tuple[str, str]]]:
    """An independent CoNLL reader: documents start at -DOCSTART-; lines starting with "# "
    that are not a 'token TAG' pair are comments."""
    documents: list[list[tuple[str, str]]] = []
    for line in text.split("\n"):
        if line.startswith("-DOCSTART-"):
            documents.append([])
            continue
        if not line.strip():
            continue
        parts = line.split(" ")
        if line.startswith("#") and not (len(parts) == 2 and parts[1][:2] in ("O", "B-", "I-")):
            continue
        documents[-1].append((parts[0], parts[1]))
    return documents


# CoNLL -----------------------------------------------------------------------------------


def test_conll_export_writes_one_token_per_line_with_bio_tags(labeled):
    documents = _read_conll(_export(labeled, "conll"))
    assert documents[0] == [
        ("Ada", "B-PER"),
        ("Lovelace", "I-PER"),
        ("met", "O"),
        ("Charles", "B-PER"),
        ("Babbage", "I-PER"),
        ("in", "O"),
        ("London", "B-Home_Town"),
        ("👍🏽", "O"),
        (".", "O"),
    ]
    assert documents[1] == [
        ("Café", "O"),
        ("Zoë", "B-PER"),
        ("works", "O"),
        ("at", "O"),
        ("東", "B-ORG"),
        ("京", "I-ORG"),
        ("Labs", "I-ORG"),
    ]
    assert [tag for _, tag in documents[2]] == ["O"] * 5


def test_conll_header_names_each_document_and_the_summary_counts_nothing_changed(labeled):
    text = _export(labeled, "conll")
    assert text.startswith("# LabelLoop CoNLL export")
    assert (
        "-DOCSTART- -X- O\n# id = d2\n# text = " + json.dumps(_stored_text("d2"), ensure_ascii=False) in text
    )
    assert text.rstrip("\n").endswith(
        "# summary: 3 documents, 0 spans widened to token boundaries, 0 overlapping spans left out"
    )


def test_conll_widens_spans_inside_tokens_and_leaves_out_overlaps_and_reports_both():
    project = _spans_project(spans_may_overlap=True)
    d1 = _stored_text("d1")
    charles = d1.index("Charles")
    part_word = {"start": charles + 1, "end": charles + 5, "label": "PER"}  # "harl"
    values = {
        "d1": {"spans": [_span(d1, "Ada Lovelace", "PER"), _span(d1, "Lovelace met", "ORG"), part_word]},
        "d2": {"spans": []},
        "d3": {"spans": []},
    }
    _label(project, values)
    text = _export(project, "conll")
    assert f"# widened: {charles + 1}-{charles + 5} PER to {charles}-{charles + 7}" in text
    assert "# dropped: 4-16 ORG (overlaps another span)" in text
    summary = "# summary: 3 documents, 1 spans widened to token boundaries, 1 overlapping spans left out"
    assert summary in text
    assert _read_conll(text)[0][:5] == [
        ("Ada", "B-PER"),
        ("Lovelace", "I-PER"),
        ("met", "O"),
        ("Charles", "B-PER"),
        ("Babbage", "O"),
    ]

    copy = _spans_project(items=False)
    importing.import_conll(project=copy, file=io.BytesIO(text.encode()), filename="x.conll")
    assert _finals(copy)["d1"] == {
        "spans": [_span(d1, "Ada Lovelace", "PER"), {"start": charles, "end": charles + 7, "label": "PER"}]
    }


def test_conll_round_trip_into_a_new_project_makes_the_items_with_the_same_text_and_spans(labeled):
    copy = _spans_project(items=False)
    result = importing.item_import(
        project=copy, file=io.BytesIO(_export(labeled, "conll").encode()), filename="e.conll", format="conll"
    )
    assert (result.items_created, result.annotations_created) == (3, 3)
    assert dict(Item.objects.filter(project=copy).values_list("external_id", "text")) == {
        key: _stored_text(key) for key in TEXTS
    }
    assert _finals(copy) == _finals(labeled) == _values()
    _assert_kept_right(copy)


def test_conll_onto_existing_items_finds_its_tokens_in_their_text(labeled):
    copy = _spans_project()
    lines = [line for line in _export(labeled, "conll").split("\n") if not line.startswith("# text")]
    importing.import_conll(project=copy, file=io.BytesIO("\n".join(lines).encode()), filename="e.conll")
    assert Item.objects.filter(project=copy).count() == 3
    assert _finals(copy) == _values()
    assert set(Item.objects.filter(project=copy).values_list("final_source", flat=True)) == {
        FinalSource.SINGLE
    }
    _assert_kept_right(copy)


def test_plain_conll_without_headers_makes_one_item_per_block_of_tokens():
    project = _spans_project(items=False)
    text = "John B-PER\nSmith I-PER\nruns O\n\nAcme B-ORG\nwins O\n"
    importing.import_conll(project=project, file=io.BytesIO(text.encode()), filename="p.conll")
    items = {i.external_id: (i.text, i.final_value) for i in Item.objects.filter(project=project)}
    assert items == {
        "p.conll:1": ("John Smith runs", {"spans": [{"start": 0, "end": 10, "label": "PER"}]}),
        "p.conll:5": ("Acme wins", {"spans": [{"start": 0, "end": 4, "label": "ORG"}]}),
    }


BAD_CONLL = {
    "label_not_in_project": (
        "-DOCSTART- -X- O\n# id = n9\nAda B-CITY\n",
        "bad.conll, line 3, field 'tag': unknown label 'CITY';"
        " this project's labels are: PER, ORG, Home Town",
    ),
    "malformed_tag": (
        "John X-PER\n",
        "bad.conll, line 1, field 'tag': expected O, B-<label> or I-<label>",
    ),
    "token_not_in_the_items_text": (
        "-DOCSTART- -X- O\n# id = d1\nAda B-PER\nByron I-PER\n",
        "bad.conll, line 4: the token 'Byron' is not next in the stored text of item 'd1'",
    ),
    "id_twice": (
        "-DOCSTART- -X- O\n# id = n1\nA O\n\n-DOCSTART- -X- O\n# id = n1\nB O\n",
        "bad.conll, line 5, field 'id': 'n1' repeats line 1",
    ),
}


@pytest.mark.parametrize("case", BAD_CONLL)
def test_a_bad_conll_file_is_refused_naming_the_line_and_field_and_stores_nothing(case):
    project = _spans_project()
    text, message = BAD_CONLL[case]
    before = _stored(project)
    with pytest.raises(importing.ImportRejected) as refused:
        importing.import_conll(project=project, file=io.BytesIO(text.encode()), filename="bad.conll")
    assert str(refused.value).startswith(message)
    assert _stored(project) == before


# spaCy JSONL -------------------------------------------------------------------------------


def test_spacy_jsonl_export_holds_the_text_the_spans_in_code_points_and_the_id(labeled):
    lines = [json.loads(line) for line in _export(labeled, "spacy").splitlines()]
    values = _values()
    assert [line["meta"]["id"] for line in lines] == ["d1", "d2", "d3"]
    for line in lines:
        key = line["meta"]["id"]
        assert line["text"] == _stored_text(key)
        assert line["spans"] == values[key]["spans"]
    assert lines[0]["text"][lines[0]["spans"][2]["start"] : lines[0]["spans"][2]["end"]] == "London"


def test_spacy_round_trip_into_a_new_project_gives_exactly_the_same_spans(labeled):
    copy = _spans_project(items=False)
    importing.import_spacy(
        project=copy, file=io.BytesIO(_export(labeled, "spacy").encode()), filename="s.jsonl"
    )
    assert _finals(copy) == _finals(labeled)
    assert dict(Item.objects.filter(project=copy).values_list("external_id", "text")) == {
        key: _stored_text(key) for key in TEXTS
    }
    _assert_kept_right(copy)


def test_spacy_triples_with_crlf_text_are_moved_to_the_stored_lf_text():
    project = _spans_project()
    raw = TEXTS["d2"]
    start = raw.index("Labs")
    line = {"text": raw, "entities": [[start, start + 4, "ORG"]], "meta": {"id": "d2"}}
    importing.import_spacy(project=project, file=io.BytesIO(json.dumps(line).encode()), filename="s.jsonl")
    value = Item.objects.get(project=project, external_id="d2").final_value
    stored = _stored_text("d2")
    assert stored[value["spans"][0]["start"] : value["spans"][0]["end"]] == "Labs"


def test_spacy_imported_as_predictions_fills_the_proposal_of_existing_and_new_items(labeled):
    copy = _spans_project()
    lines = (
        _export(labeled, "spacy")
        + json.dumps({"text": "Grace Hopper", "spans": [{"start": 0, "end": 12, "label": "PER"}]})
        + "\n"
    )
    importing.item_import(
        project=copy,
        file=io.BytesIO(lines.encode()),
        filename="s.jsonl",
        format="spacy",
        options={"import_as": "predictions"},
    )
    proposals = dict(Item.objects.filter(project=copy).values_list("external_id", "proposal"))
    assert proposals["d1"] == {"value": _values()["d1"], "score": None}
    assert proposals["s.jsonl:4"]["value"] == {"spans": [{"start": 0, "end": 12, "label": "PER"}]}
    assert Annotation.objects.filter(project=copy).count() == 0


def _jsonl(*records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


D1 = _stored_text("d1")
BAD_SPACY = {
    "span_past_the_end": (
        _jsonl({"text": "short", "spans": [{"start": 0, "end": 9, "label": "PER"}], "meta": {"id": "n1"}}),
        "bad.jsonl, line 1, field 'spans[0].end': past the end of the text: end=9, the text has 5 characters",
    ),
    "overlapping_spans_where_not_allowed": (
        _jsonl(
            {
                "text": D1,
                "spans": [_span(D1, "Ada Lovelace", "PER"), _span(D1, "Lovelace", "ORG")],
                "meta": {"id": "d1"},
            }
        ),
        "bad.jsonl, line 1, field 'spans': spans 0–12 (PER) and 4–12 (ORG) overlap",
    ),
    "label_not_in_project": (
        _jsonl({"text": "x y", "spans": [{"start": 0, "end": 1, "label": "CITY"}]}, {"text": "z"}),
        "bad.jsonl, line 1, field 'spans[0].label': unknown label 'CITY'",
    ),
    "offset_inside_a_grapheme": (
        _jsonl(
            {
                "text": D1,
                "spans": [{"start": D1.index("👍"), "end": D1.index("👍") + 1, "label": "PER"}],
                "meta": {"id": "d1"},
            }
        ),
        "bad.jsonl, line 1, field 'spans[0].end': offset",
    ),
    "text_differs_from_the_stored_item": (
        _jsonl({"text": "Ada Lovelace", "spans": [], "meta": {"id": "d1"}}),
        "bad.jsonl, line 1, field 'text': differs from the stored text of item 'd1'",
    ),
    "second_line_bad_after_a_good_one": (
        _jsonl(
            {"text": "Good one", "spans": []},
            {"text": "ok", "spans": [{"start": 2, "end": 1, "label": "PER"}]},
        ),
        "bad.jsonl, line 2, field 'spans[0].end': a span ends after it starts",
    ),
}


@pytest.mark.parametrize("case", BAD_SPACY)
def test_a_bad_spacy_file_is_refused_naming_the_line_and_field_and_stores_nothing(case):
    project = _spans_project()
    data, message = BAD_SPACY[case]
    before = _stored(project)
    with pytest.raises(importing.ImportRejected) as refused:
        importing.import_spacy(project=project, file=io.BytesIO(data), filename="bad.jsonl")
    assert str(refused.value).startswith(message)
    assert _stored(project) == before


# Through the API and the pages -------------------------------------------------------------


def _manager(project: Project):
    return project.memberships.get(role=Membership.Role.MANAGER).user


def test_the_api_exports_conll_and_spacy_and_imports_spacy(labeled):
    client = APIClient()
    client.force_authenticate(_manager(labeled))
    url = reverse("api:export", kwargs={"project_id": labeled.pk})
    conll = client.get(url, {"format": "conll"})
    assert conll.status_code == 200 and conll["Content-Type"].startswith("text/plain")
    assert ".conll" in conll["Content-Disposition"]
    assert len(_read_conll(b"".join(conll.streaming_content).decode())) == 3
    spacy = b"".join(client.get(url, {"format": "spacy"}).streaming_content)

    copy = _spans_project(items=False)
    client.force_authenticate(_manager(copy))
    response = client.post(
        reverse("api:import-list", kwargs={"project_id": copy.pk}),
        {"file": SimpleUploadedFile("s.jsonl", spacy), "format": "spacy"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["items_created"] == 3
    assert _finals(copy) == _values()


def test_the_api_refuses_import_as_for_a_format_without_values(labeled):
    client = APIClient()
    client.force_authenticate(_manager(labeled))
    response = client.post(
        reverse("api:import-list", kwargs={"project_id": labeled.pk}),
        {
            "file": SimpleUploadedFile("t.jsonl", b'{"text": "x"}\n'),
            "format": "jsonl",
            "import_as": "predictions",
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert "import_as" in json.dumps(response.json())


def test_the_export_page_offers_conll_and_spacy_and_the_background_job_writes_the_file(labeled, client):
    client.force_login(_manager(labeled))
    url = reverse("annotate:export", args=[labeled.pk])
    page = client.get(url)
    assert b'value="conll"' in page.content and b'value="coco"' not in page.content
    response = client.get(url, {"format": "conll", "background": "1"})
    assert response.status_code == 302
    job = labeled.export_jobs.get()
    exporting.item_export_run_job(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    with job.file.open("rb") as file:
        assert "# summary: 3 documents" in file.read().decode()


def test_the_import_page_imports_conll_and_says_so(labeled, client):
    copy = _spans_project()
    client.force_login(_manager(copy))
    upload = SimpleUploadedFile("e.conll", _export(labeled, "conll").encode())
    response = client.post(
        reverse("annotate:import", args=[copy.pk]),
        {"format": "conll", "files": upload, "label_source": "import", "import_as": "labels"},
        follow=True,
    )
    assert b"gave 3 existing items their boxes or spans" in response.content
    assert _finals(copy) == _values()
