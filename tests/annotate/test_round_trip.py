"""Import → label → export through the REST API gives back every item, label and annotation."""

import csv
import io
import json
import random
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Annotation, Item
from annotate.quality.consensus import final_of
from annotate.quality.votes import votes_from_rows
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LABELS = ["fresh", "rotten"]
# Texts a careless exporter would mangle: delimiters, quotes, a line break, non-ASCII, and a
# leading "-" that the CSV export escapes against formula injection.
TRICKY = ['Sweet, but "bruised"', "Two\nlines", "Ça sent très bon 🍎", "-5% off and still rotten"]


def _url(name: str, project_id: int | None = None, **kwargs) -> str:
    if project_id is not None:
        kwargs["project_id"] = project_id
    return reverse(f"api:{name}", kwargs=kwargs)


def _token_client(username: str) -> APIClient:
    client = APIClient()
    token = client.post(_url("token"), {"username": username, "password": PASSWORD}, format="json")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    return client


def _source_rows() -> list[dict]:
    """30 rows; every third one carries a label, as data labeled elsewhere would."""
    rows = []
    for i in range(30):
        text = TRICKY[i] if i < len(TRICKY) else f"Apple number {i}, picked on day {i % 7}"
        label = LABELS[i % 2] if i % 3 == 0 else ""
        rows.append({"id": f"fruit-{i:02}", "text": text, "label": label, "orchard": f"orchard {i % 4}"})
    return rows


def _csv_upload(rows: list[dict]) -> SimpleUploadedFile:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "text", "label", "orchard"])
    writer.writeheader()
    writer.writerows(rows)
    return SimpleUploadedFile("fruit.csv", buffer.getvalue().encode(), content_type="text/csv")


def _label_everything(project_id: int, clients: list[APIClient]) -> None:
    """Each annotator takes turns: /next/ once, then /submit-and-next/ until the queue is empty."""
    rng = random.Random(20240601)
    current = [client.post(_url("next", project_id), {}, format="json").json() for client in clients]
    rounds = 0
    while any(current):
        rounds += 1
        assert rounds <= 40
        for n, client in enumerate(clients):
            if not current[n]:
                continue
            body = {
                "item": current[n]["item"]["id"],
                "value": {"choices": [rng.choice(LABELS)]},
                "active_ms": rng.randint(300, 20_000),
            }
            response = client.post(_url("submit-and-next", project_id), body, format="json")
            assert response.status_code == 201
            current[n] = response.json()["next"]
    for client in clients:
        assert client.post(_url("next", project_id), {}, format="json").status_code == 204


def _export(client: APIClient, project_id: int, fmt: str) -> str:
    response = client.get(_url("export", project_id), {"format": fmt})
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content).decode()


def _expected(project_id: int):
    """From the database: each annotation's exported fields by id, and each item's final label."""
    annotations = {}
    by_item: dict[int, list] = {}
    for a in Annotation.objects.filter(project_id=project_id).select_related("annotator").order_by("id"):
        annotations[a.id] = {
            "item_id": a.item_id,
            "annotator": a.annotator.username,
            "value": a.value,
            "created_at": a.created_at.isoformat(),
            "active_ms": a.active_ms,
            "late": a.late,
            "counted": a.counted,
            "source": a.source,
        }
        by_item.setdefault(a.item_id, []).append(a)
    # Recomputed here from the votes, independently of the final labels the items keep.
    finals = {
        item_id: final_of(
            votes=list(
                votes_from_rows((a.annotator_id, a.value, a.counted, a.rejected) for a in rows).values()
            ),
            multi_label=False,
            label_order=LABELS,
        )
        for item_id, rows in by_item.items()
    }
    return annotations, finals


def _check_json_records(records: list[dict], sources: dict, annotations: dict, finals: dict) -> None:
    items = dict(Item.objects.values_list("external_id", "id"))
    assert [r["external_id"] for r in records] == list(sources)
    seen = Counter()
    for record in records:
        source = sources[record["external_id"]]
        assert record["id"] == items[record["external_id"]]
        assert record["text"] == source["text"]
        assert record["metadata"] == {"orchard": source["orchard"]}
        value, final_source = finals.get(record["id"], (None, "none"))
        assert record["final_label"] == {"value": value, "source": final_source}
        imported = [a["value"] for a in record["annotations"] if a["source"] == "import"]
        assert imported == ([{"choices": [source["label"]]}] if source["label"] else [])
        for exported in record["annotations"]:
            seen[exported["id"]] += 1
            fields = {key: exported[key] for key in annotations[exported["id"]] if key != "item_id"}
            assert {**fields, "item_id": record["id"]} == annotations[exported["id"]]
    assert seen == Counter(annotations.keys())


def _check_csv_rows(rows: list[dict], sources: dict, annotations: dict, finals: dict) -> None:
    items = dict(Item.objects.values_list("id", "external_id"))
    assert list(dict.fromkeys(row["external_id"] for row in rows)) == list(sources)
    exported = Counter()
    for row in rows:
        text = sources[row["external_id"]]["text"]
        assert row["text"] == ("'" + text if text.startswith("-") else text)
        value, final_source = finals.get(int(row["item_id"]), (None, "none"))
        assert row["final_label"] == (value["choices"][0] if value else "")
        assert row["final_source"] == final_source
        exported[
            (row["external_id"], row["annotator"], row["value"], row["created_at"], row["active_ms"])
            + (row["late"], row["counted"], row["source"])
        ] += 1
    expected = Counter(
        (items[a["item_id"]], a["annotator"], a["value"]["choices"][0], a["created_at"], str(a["active_ms"]))
        + (str(a["late"]).lower(), str(a["counted"]).lower(), a["source"])
        for a in annotations.values()
    )
    assert exported == expected


def test_import_label_and_export_through_the_api_gives_back_every_item_label_and_annotation():
    manager, first, second = UserFactory(), UserFactory(), UserFactory()
    lead = _token_client(manager.username)
    response = lead.post(
        _url("project-list"), {"name": "Fruit", "labels": LABELS, "overlap": 2}, format="json"
    )
    assert response.status_code == 201
    project_id = response.json()["id"]
    for user in (first, second):
        body = {"username": user.username, "role": "annotator"}
        assert lead.post(_url("member-list", project_id), body, format="json").status_code == 201

    rows = _source_rows()
    upload = {"file": _csv_upload(rows), "id_column": "id", "label_column": "label"}
    response = lead.post(_url("import-list", project_id), upload, format="multipart")
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["items_created"]) == ("succeeded", 30)
    assert Annotation.objects.filter(project_id=project_id, source="import").count() == 10

    _label_everything(project_id, [_token_client(first.username), _token_client(second.username)])

    # Every item reached its overlap: imported labels count as one of the two votes.
    assert Annotation.objects.filter(project_id=project_id).count() == 60
    assert not Item.objects.filter(project_id=project_id, is_complete=False).exists()
    annotations, finals = _expected(project_id)
    assert Counter((a["source"], a["annotator"]) for a in annotations.values()) == {
        ("import", "source:import"): 10,
        ("", first.username): 25,
        ("", second.username): 25,
    }
    assert any(source == "tie" for _, source in finals.values()) and any(v for v, _ in finals.values())

    sources = {row["id"]: row for row in rows}
    exported = json.loads(_export(lead, project_id, "json"))
    _check_json_records(exported, sources, annotations, finals)
    lines = _export(lead, project_id, "jsonl").splitlines()
    _check_json_records([json.loads(line) for line in lines], sources, annotations, finals)
    table = list(csv.DictReader(io.StringIO(_export(lead, project_id, "csv"))))
    _check_csv_rows(table, sources, annotations, finals)
