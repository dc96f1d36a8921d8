"""A whole project as one zip, and back into any studio as a new project (issue 17, item 6).

In training because it spans both apps (training may import annotate, never the reverse).

The zip holds `manifest.json` (format version, the dumping studio's migrations of annotate and
training, row counts, sha256 and size of every other member), one JSON Lines member per table
(TABLES, in the order a restore reads them) and `files/<storage name>` for every stored file the
project references: item images and model versions' artifacts. A row is its model's concrete
fields by name (`_meta`), with its own `id`; a foreign key to a user is the username, every other
foreign key the row id in the dump; `users.jsonl` lists every user the rows name (`id`, username,
e-mail, names; never a password), for the ids that are plain data (review outcomes, tally keys,
a review lease). Import and export jobs are left out (their files are temporary).

`project_restore` reads it into a new project: new row ids assigned by the database, every
reference remapped (foreign keys, the plain ids in Annotation.proposal_model_version_id,
Assignment.slice_model_version_id, Membership.queue_mark_item_id, Item.review_leased_by_id, the
snapshots' item lists, review outcomes, tally keys, metrics["pool_agreement"]), users matched by
username and created inactive with an unusable password when missing, files written through the
storage under new names. All or nothing: one transaction, and the files written are deleted if it
fails. The manifest is checked before anything is written.
"""

import bisect
import contextlib
import hashlib
import json
import re
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePosixPath
from typing import IO, Any, BinaryIO

import django
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from annotate.exporting import read_snapshot
from annotate.models import (
    Annotation,
    Assignment,
    Item,
    ItemNote,
    Label,
    Membership,
    Project,
    Review,
    Skip,
    Tally,
)
from annotate.projects import membership_add
from training.artifact_store import artifact_discard, artifact_prefix_new
from training.backends.base import MANIFEST as MODEL_MANIFEST
from training.datasets import FinalLabels, _fingerprint
from training.models import DatasetSnapshot, ModelVersion, Prediction, TrainingRun

FORMAT = "labelloop.project-dump"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
USERS = "users.jsonl"
FILES = "files/"
APPS = ("annotate", "training")
_CHUNK = 1000


class ProjectDumpError(Exception):
    """A dump that cannot be written or restored; the message names the member, line and field."""


@dataclass(frozen=True)
class Table:
    member: str
    model: type[models.Model]
    by: str  # the lookup that selects the project's rows


# The order a restore reads them in: every row's references come before it, except those set
# once their table is in (DEFERRED).
TABLES = (
    Table("project.jsonl", Project, "pk"),
    Table("labels.jsonl", Label, "project"),
    Table("items.jsonl", Item, "project"),
    Table("members.jsonl", Membership, "project"),
    Table("dataset_snapshots.jsonl", DatasetSnapshot, "project"),
    Table("model_versions.jsonl", ModelVersion, "project"),
    Table("assignments.jsonl", Assignment, "project"),
    Table("annotations.jsonl", Annotation, "project"),
    Table("skips.jsonl", Skip, "project"),
    Table("reviews.jsonl", Review, "project"),
    Table("item_notes.jsonl", ItemNote, "project"),
    Table("predictions.jsonl", Prediction, "model_version__project"),
    Table("training_runs.jsonl", TrainingRun, "project"),
    Table("tallies.jsonl", Tally, "project"),
)
# Foreign keys to rows restored later, or to rows of their own table: written once it is all in.
DEFERRED = {(Item, "last_review"), (Review, "supersedes")}
# Ids kept as plain data (no foreign key), and the table they name. A missing one (its row was
# deleted since) becomes null: it is a cache or a record, never a constraint.
PLAIN_IDS = {
    (Item, "review_leased_by_id"): "user",
    (Membership, "queue_mark_item_id"): Item,
    (Assignment, "slice_model_version_id"): ModelVersion,
    (Annotation, "proposal_model_version_id"): ModelVersion,
}
# "The newest annotation when …": the newest restored annotation at or before it.
ANNOTATION_MARKS = {(Project, "consensus_last_annotation_id"), (TrainingRun, "last_annotation_id")}
# Tally keys (annotate/quality/tallies.py, votes.py, finals.py): for each kind, the positions in
# its JSON key that hold a user's or a model version's id. A kind not listed here is refused by
# the dump, so that a new kind with ids in its keys is never copied with stale ids.
TALLY_IDS: dict[str, dict[int, str]] = {
    "labels_day": {1: "user"},
    "seconds": {0: "user"},
    "proposal": {0: "version"},
    "pair": {0: "user", 1: "user"},  # annotator a < annotator b: reordered after remapping
    "review": {0: "user"},
    "coincidence": {},
    "final_label": {},
    "final_source": {},
    "completed_day": {},
}
_SAFE_PART = re.compile(r"^[^\x00-\x1f\\:]+$")
_UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{16}-")


# Dump ------------------------------------------------------------------------------------------


def project_dump(*, project: Project, into: BinaryIO) -> dict:
    """Write `project` whole as a zip into `into` (a binary file); return the manifest.

    Reads in one snapshot (as exports do), a chunk of rows at a time, and writes the zip member by
    member. Raises ProjectDumpError when a referenced file is missing from the storage.
    """
    users = _UserNames()
    members: dict[str, dict] = {}
    counts: dict[str, int] = {}
    files: dict[str, str] = {}  # zip member -> storage name
    with read_snapshot(), zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        project = Project.objects.get(pk=project.pk)
        users.preload(project)
        for table in TABLES:
            rows = table.model.objects.filter(**{table.by: project.pk}).order_by("pk")
            lines = (_row_dump(obj, users, files) for obj in rows.iterator(chunk_size=_CHUNK))
            members[table.member], counts[table.member] = _member_write(archive, table.member, lines)
        members[USERS], counts[USERS] = _member_write(archive, USERS, users.rows())
        for member, name in sorted(files.items()):
            try:
                with default_storage.open(name, "rb") as source:
                    members[member] = _member_copy(archive, member, source)
            except FileNotFoundError:
                raise ProjectDumpError(f"the stored file {name!r} is missing from the storage") from None
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dumped_at": timezone.now().isoformat(),
            "studio": {"django": django.get_version(), "migrations": _migrations()},
            "project": {"id": project.pk, "name": project.name, "task_type": project.task_type},
            "counts": counts,
            "members": members,
        }
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


class _UserNames:
    """Usernames of the user ids the project's rows name, and the users.jsonl rows of those used."""

    def __init__(self) -> None:
        self.known: dict[int, Any] = {}
        self.used: set[int] = set()

    def preload(self, project: Project) -> None:
        ids: set[int] = set()
        for table in TABLES:
            for field in table.model._meta.concrete_fields:
                if field.is_relation and field.related_model is get_user_model():
                    rows = table.model.objects.filter(**{table.by: project.pk})
                    ids.update(rows.exclude(**{field.attname: None}).values_list(field.attname, flat=True))
        self._fetch(ids)

    def _fetch(self, ids) -> None:
        for user in get_user_model().objects.filter(pk__in=ids):
            self.known[user.pk] = user

    def name(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        self.mention(user_id)
        user = self.known.get(user_id)
        if user is None:
            raise ProjectDumpError(f"user {user_id} is named by the project's rows but does not exist")
        return user.get_username()

    def mention(self, user_id) -> None:
        """A user id kept as plain data: listed in users.jsonl when the user exists."""
        user_id = int(user_id)
        if user_id not in self.known:
            self._fetch([user_id])
        if user_id in self.known:
            self.used.add(user_id)

    def rows(self) -> Iterator[dict]:
        for user_id in sorted(self.used):
            user = self.known[user_id]
            yield {
                "id": user_id,
                "username": user.get_username(),
                "email": getattr(user, "email", ""),
                "first_name": getattr(user, "first_name", ""),
                "last_name": getattr(user, "last_name", ""),
            }


def _row_dump(obj: models.Model, users: _UserNames, files: dict[str, str]) -> dict:
    row: dict[str, Any] = {"id": obj.pk}
    model = type(obj)
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        value = getattr(obj, field.attname)
        if field.is_relation:
            if field.related_model is get_user_model():
                value = users.name(value)
        elif isinstance(field, models.FileField):
            value = value.name if value else ""
            if value:
                files[FILES + value] = value
        elif PLAIN_IDS.get((model, field.attname)) == "user" and value is not None:
            users.mention(value)
        row[field.name] = value
    if model is Review:
        for annotator in obj.outcomes or {}:
            users.mention(annotator)
    elif model is Tally:
        positions = TALLY_IDS.get(obj.kind)
        if positions is None:
            raise ProjectDumpError(
                f"tally kind {obj.kind!r} is unknown to the dump format: say in"
                " training/project_dump.py TALLY_IDS which parts of its keys are ids"
            )
        for position, target in positions.items():
            if target == "user":
                users.mention(json.loads(obj.key)[position])
    elif model is ModelVersion:
        _, names = default_storage.listdir(obj.artifact_path)
        if MODEL_MANIFEST not in names:
            raise ProjectDumpError(
                f"model version {obj.pk}: {obj.artifact_path}/{MODEL_MANIFEST} is not stored"
            )
        for name in names:
            files[f"{FILES}{obj.artifact_path}/{name}"] = f"{obj.artifact_path}/{name}"
    return row


def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _member_write(archive: zipfile.ZipFile, member: str, rows) -> tuple[dict, int]:
    digest, size, n = hashlib.sha256(), 0, 0
    with archive.open(member, "w", force_zip64=True) as out:
        for row in rows:
            line = (
                json.dumps(row, default=_json_default, ensure_ascii=False, sort_keys=True) + "\n"
            ).encode()
            digest.update(line)
            size += len(line)
            n += 1
            out.write(line)
    return {"sha256": digest.hexdigest(), "bytes": size}, n


def _member_copy(archive: zipfile.ZipFile, member: str, source: IO[bytes]) -> dict:
    digest, size = hashlib.sha256(), 0
    with archive.open(member, "w", force_zip64=True) as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return {"sha256": digest.hexdigest(), "bytes": size}


def _migrations() -> dict[str, list[str]]:
    applied = MigrationRecorder(connection).applied_migrations()
    return {app: sorted(name for a, name in applied if a == app) for app in APPS}


# Restore ---------------------------------------------------------------------------------------


def project_restore(*, source: BinaryIO, owner=None, name: str | None = None) -> Project:
    """Read a dump into a new project and return it; ProjectDumpError, with nothing left behind,
    for a dump that is not whole, not this format, or names what it does not hold.

    `owner` (a user), when given, becomes the project's creator and a manager of it; `name`
    renames it (a copy beside the original).
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProjectDumpError(f"not a zip file: {exc}") from None
    with archive:
        manifest = _manifest_check(archive)
        restore = _Restore(archive, manifest)
        try:
            with transaction.atomic():
                project = restore.run(owner=owner, name=name)
        except BaseException:
            restore.files_discard()
            raise
    return project


def _safe_member(name: str) -> bool:
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and all(part not in ("", ".", "..") and _SAFE_PART.match(part) for part in parts)
    )


def _manifest_check(archive: zipfile.ZipFile) -> dict:
    names = archive.namelist()
    for member in names:
        if not _safe_member(member):
            raise ProjectDumpError(f"member {member!r}: an unsafe path (absolute, '..', or odd characters)")
    if MANIFEST not in names:
        raise ProjectDumpError(f"{MANIFEST} is missing: not a project dump")
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (ValueError, zipfile.BadZipFile) as exc:
        raise ProjectDumpError(f"{MANIFEST}: not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ProjectDumpError(f"{MANIFEST}: format is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ProjectDumpError(
            f"{MANIFEST}: format_version {manifest.get('format_version')!r};"
            f" this studio reads version {FORMAT_VERSION}"
        )
    here = _migrations()
    theirs = (manifest.get("studio") or {}).get("migrations") or {}
    for app in APPS:
        newer = sorted(set(theirs.get(app) or []) - set(here[app]))
        if newer:
            raise ProjectDumpError(
                f"{MANIFEST}: dumped by a newer studio: {app} migration {newer[0]} is not applied here"
            )
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise ProjectDumpError(f"{MANIFEST}: no members listed")
    for member in (*(t.member for t in TABLES), USERS):
        if member not in listed:
            raise ProjectDumpError(f"{MANIFEST}: the member {member} is not listed")
    present = set(names)
    for member, described in sorted(listed.items()):
        if member not in present:
            raise ProjectDumpError(f"member {member} is listed in {MANIFEST} but missing from the zip")
        if not _safe_member(member):
            raise ProjectDumpError(f"{MANIFEST}: member {member!r}: an unsafe path")
        digest = hashlib.sha256()
        try:
            with archive.open(member) as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ProjectDumpError(f"member {member}: unreadable ({exc})") from None
        if not isinstance(described, dict) or digest.hexdigest() != described.get("sha256"):
            raise ProjectDumpError(f"member {member}: sha256 does not match {MANIFEST}")
    unlisted = sorted(present - set(listed) - {MANIFEST})
    if unlisted:
        raise ProjectDumpError(f"member {unlisted[0]} is not listed in {MANIFEST}")
    return manifest


class _Restore:
    def __init__(self, archive: zipfile.ZipFile, manifest: dict) -> None:
        self.archive = archive
        self.members = manifest["members"]
        self.ids: dict[Any, dict[int, int]] = {t.model: {} for t in TABLES}
        self.users: dict[int, Any] = {}  # old user id -> user here
        self.by_name: dict[str, Any] = {}
        self.stored: list[str] = []  # storage names written, deleted if the restore fails
        self.prefixes: list[str] = []
        self.deferred: dict[tuple, list[tuple[str, int, int, int]]] = {}  # (model, field): rows
        self.marks: list[tuple[models.Model, str, int]] = []
        self.agreements: list[ModelVersion] = []
        self.users_created = 0

    # Reading ------------------------------------------------------------------------------

    def lines(self, member: str) -> Iterator[tuple[int, dict]]:
        with self.archive.open(member) as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    row = json.loads(raw)
                except ValueError:
                    raise ProjectDumpError(f"{member} line {number}: not JSON") from None
                if not isinstance(row, dict) or not isinstance(row.get("id"), int):
                    raise ProjectDumpError(f"{member} line {number}: not a row with an integer id")
                yield number, row

    def fail(self, member: str, number: int, message: str):
        raise ProjectDumpError(f"{member} line {number}: {message}")

    # The whole restore -----------------------------------------------------------------------

    def run(self, *, owner, name) -> Project:
        self.users_restore()
        for table in TABLES:
            self.table_restore(table)
        self.deferred_write()
        project = Project.objects.get(pk=self.project_id)
        if owner is not None:
            project.created_by = owner
            project.save(update_fields=["created_by"])
            if not project.memberships.filter(user=owner).exists():
                membership_add(project=project, user=owner, role=Membership.Role.MANAGER)
            else:
                project.memberships.filter(user=owner).update(role=Membership.Role.MANAGER)
        if name:
            project.name = name
            project.save(update_fields=["name"])
        project.restore_users_created = self.users_created
        return project

    def users_restore(self) -> None:
        User = get_user_model()
        rows = list(self.lines(USERS))
        names = {}
        for number, row in rows:
            username = row.get("username")
            if not isinstance(username, str) or not username:
                self.fail(USERS, number, "field 'username': missing")
            names[username] = (number, row)
        existing = {u.get_username(): u for u in User.objects.filter(**{f"{User.USERNAME_FIELD}__in": names})}
        for username, (number, row) in names.items():
            user = existing.get(username)
            if user is None:
                # Someone who has no account here: inactive, no password, until an admin says so.
                user = User(**{User.USERNAME_FIELD: username}, is_active=False)
                for field in ("email", "first_name", "last_name"):
                    if hasattr(user, field) and isinstance(row.get(field), str):
                        setattr(user, field, row[field])
                user.set_unusable_password()
                try:
                    user.full_clean(validate_unique=False)
                except ValidationError as exc:
                    self.fail(USERS, number, f"not a valid user here: {exc.messages[0]}")
                user.save()
                self.users_created += 1
            self.users[row["id"]] = user
            self.by_name[username] = user

    def table_restore(self, table: Table) -> None:
        model, member = table.model, table.member
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        by_name = {f.name: f for f in fields}
        auto_now = [f for f in fields if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)]
        batch: list[tuple[int, int, models.Model, dict]] = []
        seen = 0
        for number, row in self.lines(member):
            seen += 1
            if model is Project and seen > 1:
                self.fail(member, number, "a dump holds one project")
            unknown = sorted(set(row) - set(by_name) - {"id"})
            if unknown:
                self.fail(member, number, f"field {unknown[0]!r} is unknown to this studio")
            values = {}
            for field in fields:
                values[field.attname] = self.value(member, number, model, field, row)
            obj = model(**values)
            try:
                self.row_adjust(member, number, obj, row)
            except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
                # A JSON field of another shape than the studio writes (ids inside it are remapped).
                self.fail(member, number, f"a field of an unexpected shape ({type(exc).__name__}: {exc})")
            batch.append((number, row["id"], obj, {f.attname: getattr(obj, f.attname) for f in auto_now}))
            if len(batch) >= _CHUNK:
                self.insert(member, model, batch, auto_now)
                batch = []
        if batch:
            self.insert(member, model, batch, auto_now)
        if model is Project and not seen:
            raise ProjectDumpError(f"{member}: no project row")

    def value(self, member, number, model, field, row):
        key = field.name
        if key not in row:
            if field.has_default():
                return field.get_default()
            if field.null:
                return None
            self.fail(member, number, f"field {key!r} is missing")
        raw = row[key]
        if field.is_relation:
            if raw is None:
                if not field.null:
                    self.fail(member, number, f"field {key!r} is null")
                return None
            if field.related_model is get_user_model():
                user = self.by_name.get(raw) if isinstance(raw, str) else None
                if user is None:
                    self.fail(member, number, f"field {key!r}: user {raw!r} is not in {USERS}")
                return user.pk
            if (model, key) in DEFERRED:
                self.deferred.setdefault((model, field), []).append((member, number, row["id"], raw))
                return None
            return self.ref(member, number, key, field.related_model, raw)
        if (model, field.attname) in PLAIN_IDS and raw is not None:
            return self.plain(PLAIN_IDS[(model, field.attname)], raw)
        if (model, field.attname) in ANNOTATION_MARKS:
            if not isinstance(raw, int):
                self.fail(member, number, f"field {key!r}: not an annotation id")
            return raw  # remapped once the annotations are in
        if isinstance(field, models.FileField):
            return self.file_restore(member, number, key, raw) if raw else ""
        try:
            value = field.to_python(raw)
            if value is None:
                if not field.null:
                    raise ValidationError("null, and the field takes none")
                return None
            if field.choices and value not in {c for c, _ in field.flatchoices}:
                raise ValidationError(f"{value!r} is not one of its choices")
            field.run_validators(value)
        except ValidationError as exc:
            self.fail(member, number, f"field {key!r}: {'; '.join(exc.messages)}")
        return value

    def ref(self, member, number, key, model, raw) -> int:
        new = self.ids[model].get(raw) if isinstance(raw, int) else None
        if new is None:
            self.fail(member, number, f"field {key!r}: {model._meta.model_name} {raw!r} is not in the dump")
        return new

    def plain(self, target, raw):
        if target == "user":
            user = self.users.get(raw)
            return user.pk if user is not None else None
        return self.ids[target].get(raw)

    def row_adjust(self, member, number, obj, row) -> None:
        """What a row needs beyond its fields: ids inside JSON, files, an open run."""
        if isinstance(obj, Project):
            params = dict(obj.training_params or {})
            # A transfer source is another project's version: an id that means nothing here.
            params.pop("start_from", None)
            obj.training_params = params
            if obj.queue_reordering:
                obj.queue_reordering, obj.queue_epoch = False, obj.queue_epoch + 1
            self.marks.append((obj, "consensus_last_annotation_id", obj.consensus_last_annotation_id))
        elif isinstance(obj, DatasetSnapshot):
            self.snapshot_remap(member, number, obj)
        elif isinstance(obj, ModelVersion):
            self.artifacts_restore(member, number, obj, row)
            agreement = (obj.metrics or {}).get("pool_agreement")
            if isinstance(agreement, dict) and "previous_id" in agreement:
                self.agreements.append(obj)  # the previous version may be in the same chunk
        elif isinstance(obj, Review):
            outcomes = {}
            for annotator, outcome in (obj.outcomes or {}).items():
                user = self.users.get(int(annotator)) if str(annotator).isdigit() else None
                if user is None:
                    self.fail(member, number, f"field 'outcomes': user {annotator} is not in {USERS}")
                outcomes[str(user.pk)] = outcome
            obj.outcomes = outcomes
        elif isinstance(obj, TrainingRun):
            if obj.status in TrainingRun.OPEN_STATUSES:
                # No worker here holds it: a run left open would block every later request.
                obj.status = TrainingRun.Status.FAILED
                obj.error = "open when the project was dumped; not run after the restore"
            self.marks.append((obj, "last_annotation_id", obj.last_annotation_id))
        elif isinstance(obj, Tally):
            obj.key = self.tally_key(member, number, obj.kind, obj.key)

    def snapshot_remap(self, member, number, obj) -> None:
        items = self.ids[Item]
        kept = [(items[i], v) for i, v in zip(obj.item_ids, obj.values, strict=False) if i in items]
        # Items deleted since the snapshot was taken have no row to point at: left out.
        obj.item_ids = [i for i, _ in kept]
        obj.values = [v for _, v in kept]
        obj.validation_ids = sorted(items[i] for i in obj.validation_ids if i in items)
        obj.lent = {name: items[i] for name, i in (obj.lent or {}).items() if i in items}
        labels = FinalLabels(classes=obj.classes, item_ids=obj.item_ids, values=obj.values)
        obj.fingerprint = _fingerprint(labels, obj.validation_ids)

    def tally_key(self, member, number, kind, key) -> str:
        positions = TALLY_IDS.get(kind)
        if positions is None:
            self.fail(member, number, f"tally kind {kind!r} is unknown to this studio")
        if not positions:
            return key
        try:
            parts = json.loads(key)
        except ValueError:
            self.fail(member, number, f"field 'key': not JSON ({key[:40]!r})")
        for position, target in positions.items():
            old = parts[position] if isinstance(parts, list) and len(parts) > position else None
            if target == "user":
                user = self.users.get(old) if isinstance(old, int) else None
                if user is None:
                    self.fail(member, number, f"field 'key': user {old!r} is not in {USERS}")
                parts[position] = user.pk
            elif old is not None:
                parts[position] = self.ids[ModelVersion].get(old)
        if kind == "pair" and parts[0] > parts[1]:
            parts = [parts[1], parts[0], parts[2], parts[4], parts[3]]
        return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))

    # Files -----------------------------------------------------------------------------------

    def _member_of(self, member, number, key, name: str) -> str:
        source = FILES + name
        if not isinstance(name, str) or not _safe_member(source):
            self.fail(member, number, f"field {key!r}: an unsafe file name {name!r}")
        if source not in self.members:
            self.fail(member, number, f"field {key!r}: the file {source} is not in the dump")
        return source

    def file_restore(self, member, number, key, name) -> str:
        source = self._member_of(member, number, key, name)
        base = _UPLOAD_TOKEN.sub("", PurePosixPath(name).name)
        wanted = f"projects/{self.project_id}/{secrets.token_hex(8)}-{default_storage.get_valid_name(base)}"
        with self.archive.open(source) as fh:
            saved = default_storage.save(wanted, File(fh, name=base))
        self.stored.append(saved)
        return saved

    def artifacts_restore(self, member, number, obj, row) -> None:
        old = obj.artifact_path
        prefix = f"{FILES}{old}/"
        names = sorted(m[len(prefix) :] for m in self.members if m.startswith(prefix))
        if MODEL_MANIFEST not in names or any("/" in n for n in names):
            self.fail(member, number, f"field 'artifact_path': {prefix}{MODEL_MANIFEST} is not in the dump")
        new = artifact_prefix_new(project_id=self.project_id)
        self.prefixes.append(new)
        # The manifest last, as artifact_upload does: a folder without it does not load.
        for name in [n for n in names if n != MODEL_MANIFEST] + [MODEL_MANIFEST]:
            wanted = f"{new}/{name}"
            with self.archive.open(prefix + name) as fh:
                saved = default_storage.save(wanted, File(fh, name=name))
            self.stored.append(saved)
            if saved != wanted:
                raise ProjectDumpError(f"the storage already held {wanted!r}")
        obj.artifact_path = new

    def files_discard(self) -> None:
        for name in self.stored:
            with contextlib.suppress(Exception):
                default_storage.delete(name)
        for prefix in self.prefixes:
            artifact_discard(prefix=prefix, names=[])

    # Writing ---------------------------------------------------------------------------------

    def insert(self, member, model, batch, auto_now) -> None:
        objs = [obj for _, _, obj, _ in batch]
        lines = f"{member} lines {batch[0][0]}–{batch[-1][0]}"
        if model is Annotation:
            self.idempotency_keys_clear(objs)
        try:
            with transaction.atomic():
                model.objects.bulk_create(objs)
                if auto_now:
                    # bulk_create stamped them now; the dump's moments stand.
                    for _, _, obj, moments in batch:
                        for attname, moment in moments.items():
                            setattr(obj, attname, moment)
                    model.objects.bulk_update(objs, [f.name for f in auto_now])
        except DatabaseError as exc:
            raise ProjectDumpError(f"{lines}: the database refused them: {exc}") from None
        for number, old, obj, _ in batch:
            if old in self.ids[model]:
                raise ProjectDumpError(f"{member} line {number}: id {old} is repeated")
            if obj.pk is None:
                raise ProjectDumpError(f"{lines}: this database did not return the new ids")
            self.ids[model][old] = obj.pk
        if model is Project:
            self.project_id = objs[0].pk

    def idempotency_keys_clear(self, annotations: list[Annotation]) -> None:
        """A submit's key is unique per annotator across projects: where the same annotator's key
        is already here (a copy restored beside its original), the copy's is cleared. A key only
        answers a submit retried within seconds, which a restored project never sees."""
        keyed = [a for a in annotations if a.idempotency_key]
        if not keyed:
            return
        taken = set(
            Annotation.objects.filter(
                annotator_id__in={a.annotator_id for a in keyed},
                idempotency_key__in={a.idempotency_key for a in keyed},
            ).values_list("annotator_id", "idempotency_key")
        )
        for annotation in keyed:
            if (annotation.annotator_id, annotation.idempotency_key) in taken:
                annotation.idempotency_key = ""

    def deferred_write(self) -> None:
        """The foreign keys to rows restored later, and the annotation marks."""
        for (model, field), rows in self.deferred.items():
            objs = []
            for member, number, old, raw in rows:
                objs.append(
                    model(
                        pk=self.ids[model][old],
                        **{field.attname: self.ref(member, number, field.name, field.related_model, raw)},
                    )
                )
            model.objects.bulk_update(objs, [field.name], batch_size=_CHUNK)
        for version in self.agreements:
            agreement = version.metrics["pool_agreement"]
            previous = self.ids[ModelVersion].get(agreement["previous_id"])
            version.metrics = {**version.metrics, "pool_agreement": {**agreement, "previous_id": previous}}
            ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
        annotations = sorted(self.ids[Annotation].items())
        olds = [old for old, _ in annotations]
        for obj, attname, old in self.marks:
            at = bisect.bisect_right(olds, old or 0)
            new = annotations[at - 1][1] if at else 0
            type(obj).objects.filter(pk=obj.pk).update(**{attname: new})
