"""A project dumped whole and restored after its deletion is the same project (issue 17, item 6):
the second dump equals the first member by member once ids and timestamps are normalised, the
project's JSON export is the same, the restored model predicts the same probabilities, and the
queue serves and takes answers. A damaged dump is refused naming the member and line, and leaves
no row and no file behind."""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotate.exporting import export_json
from annotate.gold import item_gold_set
from annotate.models import Annotation, Item, Label, Project, Review, Tally
from annotate.notes import item_note_add
from annotate.projects import project_delete
from annotate.quality.rebuild import project_quality_rebuild
from annotate.queue import annotation_submit, assignment_next, item_skip
from annotate.review import review_decide, review_next
from tests.factories import UserFactory, make_project
from tests.training.projects import digits_project
from training.artifact_store import artifact_local
from training.backends import load_backend
from training.models import ModelVersion, Prediction
from training.project_dump import project_dump, project_restore
from training.runs import training_run_execute, training_run_request
from training.scoring import prediction_pool_score
from training.versions import model_inputs, model_version_active, model_version_train

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = ["great", "awful", "fine", "bad", "superb", "dull"]


def _text_project():
    """Two annotators on 24 of 30 items (overlap 2, some disagreeing), a review, a gold item, a
    note, a skip, two trained versions (the second active, from a run) with predictions."""
    a, b, lead = UserFactory(), UserFactory(), UserFactory()
    project = make_project(
        labels=["good", "poor"],
        overlap=2,
        members=[(a, "annotator"), (b, "annotator"), (lead, "reviewer")],
    )
    from annotate.items import item_create_bulk

    item_create_bulk(
        project=project,
        rows=[{"external_id": f"t{i}", "text": f"a {WORDS[i % 6]} film, take {i}"} for i in range(30)],
    )
    truth = {f"t{i}": "good" if i % 2 == 0 else "poor" for i in range(30)}
    for user, flip in ((a, 7), (b, 5)):
        for n in range(24):
            lease = assignment_next(project=project, annotator=user)
            label = truth[lease.item.external_id]
            if n % flip == 0:
                label = "poor" if label == "good" else "good"
            annotation_submit(
                project=project,
                item_id=lease.item.pk,
                annotator=user,
                value={"choices": [label]},
                active_ms=900,
            )
    lease = assignment_next(project=project, annotator=a)
    item_skip(project=project, item_id=lease.item.pk, annotator=a)
    to_review = review_next(project=project, reviewer=lead)
    answer = Annotation.objects.filter(item=to_review.item).first()
    review_decide(
        project=project, item_id=to_review.item.pk, reviewer=lead, decision="accept",
        supersedes=None, annotation_id=answer.pk,
    )  # fmt: skip
    gold = Item.objects.filter(project=project, annotation_count=0).order_by("id").last()
    item_gold_set(project=project, item_id=gold.pk, value={"choices": ["good"]})
    item_note_add(project=project, item_id=gold.pk, author=a, text="looks odd", flagged=True)
    first = model_version_train(project=project, folds=0, diagnostics=False)
    prediction_pool_score(version=first)
    run, _ = training_run_request(project=project, trigger="test")
    assert training_run_execute(run_id=run.pk).status == "succeeded"
    assert Review.objects.filter(project=project).count() == 1
    return Project.objects.get(pk=project.pk)


def _dump(project) -> bytes:
    out = io.BytesIO()
    project_dump(project=project, into=out)
    return out.getvalue()


def _rows(archive: zipfile.ZipFile, member: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(member).splitlines()]


# Which fields name which table's rows: written here again, apart from the code under test.
REFS = {
    "project": "project.jsonl",
    "item": "items.jsonl",
    "last_review": "reviews.jsonl",
    "annotation": "annotations.jsonl",
    "supersedes": "reviews.jsonl",
    "dataset": "dataset_snapshots.jsonl",
    "model_version": "model_versions.jsonl",
    "queue_mark_item": "items.jsonl",
    "queue_mark_item_id": "items.jsonl",
    "slice_model_version_id": "model_versions.jsonl",
    "proposal_model_version_id": "model_versions.jsonl",
    "consensus_last_annotation_id": "annotations.jsonl",
    "last_annotation_id": "annotations.jsonl",
}
TALLY_USERS = {"labels_day": [1], "seconds": [0], "pair": [0, 1], "review": [0]}


def _normalised(data: bytes) -> dict[str, list]:
    """Every member's rows with ids as positions in their table, users as usernames, files as
    their sha256, and no timestamps."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    tables = [m for m in manifest["members"] if m.endswith(".jsonl")]
    rows = {m: _rows(archive, m) for m in tables}
    place = {m: {row["id"]: n for n, row in enumerate(rows[m])} for m in tables}
    users = {row["id"]: row["username"] for row in rows["users.jsonl"]}
    sha = {m: d["sha256"] for m, d in manifest["members"].items()}

    def ref(member, old):
        return None if old is None else ("at", place[member].get(old, f"missing {old}"))

    out = {}
    for member in tables:
        normal = []
        for row in rows[member]:
            row = {k: v for k, v in row.items() if k != "id" and not k.endswith("_at")}
            for key, target in REFS.items():
                if key in row and member != "users.jsonl":
                    row[key] = ref(target, row[key])
            if row.get("image"):
                row["image"] = sha[f"files/{row['image']}"]
            if "review_leased_by_id" in row:
                row["review_leased_by_id"] = users.get(row["review_leased_by_id"])
            if member == "dataset_snapshots.jsonl":
                row["item_ids"] = [ref("items.jsonl", i) for i in row["item_ids"]]
                row["validation_ids"] = [ref("items.jsonl", i) for i in row["validation_ids"]]
                row["lent"] = {k: ref("items.jsonl", i) for k, i in row["lent"].items()}
                row.pop("fingerprint")  # a hash of the ids
            if member == "model_versions.jsonl":
                prefix = f"files/{row.pop('artifact_path')}/"
                row["files"] = sorted((m[len(prefix) :], s) for m, s in sha.items() if m.startswith(prefix))
                agreement = row["metrics"].get("pool_agreement")
                if agreement:
                    agreement["previous_id"] = ref("model_versions.jsonl", agreement["previous_id"])
            if member == "reviews.jsonl":
                row["outcomes"] = {users[int(k)]: v for k, v in row["outcomes"].items()}
            if member == "tallies.jsonl" and row["kind"] in TALLY_USERS | {"proposal": 0}:
                parts = json.loads(row["key"])
                for position in TALLY_USERS.get(row["kind"], []):
                    parts[position] = users[parts[position]]
                if row["kind"] == "pair" and parts[0] > parts[1]:  # the same pair, either way round
                    parts = [parts[1], parts[0], parts[2], parts[4], parts[3]]
                if row["kind"] == "proposal":
                    parts[0] = ref("model_versions.jsonl", parts[0])
                row["key"] = parts
            if member == "users.jsonl":
                row = {"username": row["username"], "email": row["email"]}
            normal.append(row)
        if member == "tallies.jsonl":
            normal.sort(key=lambda r: (r["kind"], json.dumps(r["key"])))
        if member == "users.jsonl":
            normal.sort(key=lambda r: r["username"])
        out[member] = normal
    out["counts"] = manifest["counts"]
    return out


def _export(project) -> list[dict]:
    records = json.loads("".join(export_json(project=project)))
    for record in records:
        for key in ("id", "image", "image_url"):
            record.pop(key, None)
        for annotation in record["annotations"]:
            annotation.pop("id")
            annotation.pop("created_at")
            if annotation["proposal"]:
                annotation["proposal"].pop("model_version_id")
    return records


def _probabilities(project) -> np.ndarray:
    version = model_version_active(project=project)
    backend = load_backend(artifact_local(prefix=version.artifact_path))
    ids = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    return backend.predict_proba(model_inputs(project=project, backend=backend, item_ids=ids))


def _stored_files(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_a_trained_text_project_restored_after_its_deletion_dumps_exports_and_predicts_the_same():
    project = _text_project()
    first = _dump(project)
    exported, probabilities = _export(project), _probabilities(project)
    old_pk = project.pk
    first_annotator = project.memberships.filter(role="annotator").order_by("user_id").first().user
    project_delete(project=project)
    assert not Project.objects.filter(pk=old_pk).exists()
    # Gone from this studio too: restored as a new, later user, so ids and "pair" keys are remapped.
    first_annotator.delete()

    restored = project_restore(source=io.BytesIO(first))

    assert restored.pk != old_pk
    second = _dump(restored)
    before, after = _normalised(first), _normalised(second)
    assert before.keys() == after.keys()
    for member in before:
        assert after[member] == before[member], member
    assert before["counts"]["annotations.jsonl"] == 48 and before["counts"]["model_versions.jsonl"] == 2
    assert before["counts"]["predictions.jsonl"] > 0 and before["counts"]["skips.jsonl"] == 1
    assert _export(restored) == exported
    assert np.allclose(_probabilities(restored), probabilities, atol=1e-12)
    # The predictions stored are the restored items', and the active version is the second.
    active = model_version_active(project=restored)
    assert active.number == 2
    assert Prediction.objects.filter(model_version=active, item__project=restored).exists()


def test_the_restored_queue_serves_and_takes_answers_with_the_counters_and_moments_it_had():
    project = _text_project()
    counters = list(
        Item.objects.filter(project=project)
        .order_by("id")
        .values_list(
            "annotation_count", "lease_count", "is_complete", "priority", "final_value", "created_at"
        )
    )
    data = _dump(project)
    first_annotator = project.memberships.filter(role="annotator").order_by("user_id").first().user
    project_delete(project=project)
    first_annotator.delete()  # restored as a new user with a later id: the "pair" keys swap
    restored = project_restore(source=io.BytesIO(data))
    assert (
        list(
            Item.objects.filter(project=restored)
            .order_by("id")
            .values_list(
                "annotation_count", "lease_count", "is_complete", "priority", "final_value", "created_at"
            )
        )
        == counters
    )
    assert restored.created_at == project.created_at
    # The tallies' remapped keys (annotator ids) are what a recount of the restored rows gives.
    tallies = sorted(Tally.objects.filter(project=restored).values_list("kind", "key", "n"))
    project_quality_rebuild(
        project=restored,
        models={"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review},
    )
    rebuilt = sorted(Tally.objects.filter(project=restored).values_list("kind", "key", "n"))
    assert rebuilt == [t for t in tallies if t[2]]  # a recount keeps no zero rows
    assert any(kind == "pair" for kind, _, _ in rebuilt)
    annotator = restored.memberships.filter(role="annotator").order_by("id").last().user
    lease = assignment_next(project=restored, annotator=annotator)
    assert lease is not None and lease.item.project_id == restored.pk
    annotation = annotation_submit(
        project=restored, item_id=lease.item.pk, annotator=annotator, value={"choices": ["good"]}
    )
    assert annotation.item_id == lease.item.pk


def test_an_image_project_is_restored_with_its_files_beside_the_original(settings):
    project = digits_project(n=20)
    data = _dump(project)
    restored = project_restore(source=io.BytesIO(data), name="copy")
    assert restored.name == "copy" and restored.pk != project.pk
    pairs = zip(
        Item.objects.filter(project=project).order_by("id"),
        Item.objects.filter(project=restored).order_by("id"),
        strict=True,
    )
    for old, new in pairs:
        assert new.image.name != old.image.name and new.image.name.startswith(f"projects/{restored.pk}/")
        with old.image.open("rb") as a, new.image.open("rb") as b:
            assert a.read() == b.read()
    assert _export(restored) == _export(project)


def test_a_copy_beside_its_original_keeps_the_answers_but_not_their_idempotency_keys():
    user = UserFactory()
    project = make_project(items=2, members=[(user, "annotator")])
    lease = assignment_next(project=project, annotator=user)
    annotation_submit(
        project=project, item_id=lease.item.pk, annotator=user, value={"choices": ["positive"]},
        idempotency_key="k-1",
    )  # fmt: skip
    copy = project_restore(source=io.BytesIO(_dump(project)), name="copy")
    restored = Annotation.objects.get(project=copy)
    assert restored.value == {"choices": ["positive"]} and restored.annotator == user
    assert restored.idempotency_key == ""
    assert Annotation.objects.get(project=project).idempotency_key == "k-1"


def test_users_missing_here_are_created_inactive_without_a_password():
    project = make_project(items=3, members=[(UserFactory(username="visitor"), "annotator")])
    data = _dump(project)
    project_delete(project=project)
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="visitor").delete()
    restored = project_restore(source=io.BytesIO(data))
    visitor = get_user_model().objects.get(username="visitor")
    assert not visitor.is_active and not visitor.has_usable_password()
    assert restored.memberships.filter(user=visitor, role="annotator").exists()


def test_the_commands_dump_and_restore_with_an_owner(tmp_path):
    project = make_project(items=4)
    out = tmp_path / "p.zip"
    call_command("project_dump", project.pk, str(out))
    owner = UserFactory()
    call_command("project_restore", str(out), "--owner", owner.username, "--name", "again")
    restored = Project.objects.get(name="again")
    assert restored.created_by == owner
    assert restored.memberships.get(user=owner).role == "manager"
    assert restored.items.count() == 4


# Damaged dumps ---------------------------------------------------------------------------------


def _rewrite(data: bytes, change, *, fix_manifest=True) -> bytes:
    """The dump with `change(members)` applied to its {name: bytes}; the manifest's sha256 follow."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    change(members, manifest)
    if fix_manifest:
        for name, content in members.items():
            if name in manifest["members"]:
                manifest["members"][name]["sha256"] = hashlib.sha256(content).hexdigest()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
        target.writestr("manifest.json", json.dumps(manifest))
    return out.getvalue()


def _line_replaced(member, number, change):
    def apply(members, manifest):
        lines = members[member].splitlines()
        row = json.loads(lines[number - 1])
        change(row)
        lines[number - 1] = json.dumps(row).encode()
        members[member] = b"\n".join(lines) + b"\n"

    return apply


def _version(members, manifest):
    manifest["format_version"] = 99


def _missing(members, manifest):
    del members["labels.jsonl"]


def _unsafe(members, manifest):
    members["../evil.txt"] = b"x"
    manifest["members"]["../evil.txt"] = {"sha256": hashlib.sha256(b"x").hexdigest(), "bytes": 1}


def _newer(members, manifest):
    manifest["studio"]["migrations"]["annotate"].append("9999_from_the_future")


def _annotation_item(row):
    row["item"] = 987654


def _image_name(row):
    row["image"] = "../../etc/passwd"


BAD = [
    ("format_version", _version, True, "format_version 99"),
    ("newer studio", _newer, True, "annotate migration 9999_from_the_future is not applied here"),
    (
        "unknown field",
        _line_replaced("items.jsonl", 4, lambda row: row.update(colour="red")),
        True,
        "items.jsonl line 4: field 'colour' is unknown to this studio",
    ),
    (
        "bad value",
        _line_replaced("annotations.jsonl", 2, lambda row: row.update(active_ms="soon")),
        True,
        "annotations.jsonl line 2: field 'active_ms'",
    ),
    ("missing", _missing, True, "labels.jsonl is listed in manifest.json but missing"),
    ("unsafe", _unsafe, True, "member '../evil.txt': an unsafe path"),
    (
        "reference",
        _line_replaced("annotations.jsonl", 3, _annotation_item),
        True,
        "annotations.jsonl line 3: field 'item': item 987654 is not in the dump",
    ),
    (
        "file name",
        _line_replaced("items.jsonl", 5, _image_name),
        True,
        "items.jsonl line 5: field 'image': an unsafe file name '../../etc/passwd'",
    ),
    (
        "sha256",
        _line_replaced("items.jsonl", 2, lambda row: row.update(text="changed")),
        False,
        "member items.jsonl: sha256 does not match manifest.json",
    ),
]


@pytest.mark.parametrize(("case", "change", "fix", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_damaged_dump_is_refused_by_name_and_leaves_nothing_behind(
    settings, tmp_path, case, change, fix, message
):
    project = digits_project(n=8)
    data = _rewrite(_dump(project), change, fix_manifest=fix)
    path = tmp_path / "bad.zip"
    path.write_bytes(data)
    projects, files = Project.objects.count(), _stored_files(settings)
    with pytest.raises(CommandError) as refused:
        call_command("project_restore", str(path))
    assert message in str(refused.value)
    assert Project.objects.count() == projects
    assert Item.objects.count() == 8
    assert _stored_files(settings) == files


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "bad.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(CommandError, match="not a zip file"):
        call_command("project_restore", str(path))
    assert not Project.objects.exists()
    assert not ModelVersion.objects.exists()
