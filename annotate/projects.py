"""Projects, their labels and their members: services (writes) and selectors (reads)."""

import logging
from collections import deque

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import BooleanField, Count, ExpressionWrapper, F, Q, QuerySet
from django.db.models.expressions import RawSQL

from annotate.audit import Action, audit_record
from annotate.colours import label_colour
from annotate.models import (
    Annotation,
    ExportJob,
    ImportJob,
    Item,
    Label,
    Membership,
    PickKind,
    Project,
    Review,
    ReviewState,
    Tally,
)
from annotate.quality.rebuild import project_quality_rebuild
from annotate.quality.recompute import project_consensus_request
from annotate.queue import queue_order_changed
from annotate.raw_rows import columns, from_row

logger = logging.getLogger(__name__)

# Hotkeys in the order labels get them: 1–9, then 0, then q–p.
DEFAULT_HOTKEYS = "1234567890qwertyuiop"

PROJECT_FIELDS = (
    "name",
    "instructions",
    "task_type",
    "multi_label",
    "overlap",
    "lease_seconds",
    "training_min_labels",
    "retrain_every",
    "sampling_strategy",
    "text_model",
    "training_params",
    "consensus_method",
    "consensus_every",
    "gold_share",
    "gold_pause_below",
    "random_share",
    "spans_snap_to_tokens",
    "spans_may_overlap",
    "fetch_image_urls",
)
LABEL_FIELDS = ("name", "colour", "hotkey", "order")
# The labeling page's own keys (static/annotate/js/label.js): a label may not take one. A label
# that holds one from before keeps it, and on the page its key wins over the page's action.
RESERVED_HOTKEYS = {
    "s": "skip",
    "h": "the history list",
    "c": "comment",
    "f": "flag for the lead",
    "?": "the list of keys",
    "[": "back to your previous item",
    "]": "forward, toward the queue",
}


# Selectors -------------------------------------------------------------------------------


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects `user` belongs to, each with `my_role` set."""
    return (
        Project.objects.filter(memberships__user=user).annotate(my_role=F("memberships__role")).order_by("id")
    )


def project_list_with_progress(*, user: AbstractBaseUser) -> list[tuple[Project, dict]]:
    """`user`'s projects with their progress (total, complete, percent, mine): three queries, whatever
    the number of projects (the home page)."""
    projects = list(project_list_for_user(user=user))
    ids = [project.pk for project in projects]
    counts = {
        row["project_id"]: row
        for row in Item.objects.filter(project_id__in=ids)
        .values("project_id")
        .annotate(total=Count("id"), complete=Count("id", filter=Q(is_complete=True)))
        .order_by()
    }
    mine = dict(
        Annotation.objects.filter(project_id__in=ids, annotator=user)
        .values("project_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("project_id", "n")
    )
    rows = []
    for project in projects:
        total = counts.get(project.pk, {}).get("total", 0)
        complete = counts.get(project.pk, {}).get("complete", 0)
        percent = round(100 * complete / total) if total else 0
        rows.append(
            (
                project,
                {"total": total, "complete": complete, "percent": percent, "mine": mine.get(project.pk, 0)},
            )
        )
    return rows


def membership_get(*, user: AbstractBaseUser, project_id: int) -> Membership | None:
    """The user's membership of the project (with the project loaded), or None."""
    if not user.is_authenticated:
        return None
    # Every API request under /projects/<id>/ runs this: SQL, see annotate/raw_rows.py.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(Membership, 'm')}, {columns(Project, 'p')} FROM {Membership._meta.db_table} m"
            f" JOIN {Project._meta.db_table} p ON p.id = m.project_id"
            " WHERE m.user_id = %s AND m.project_id = %s",
            [user.pk, int(project_id)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(Membership._meta.concrete_fields)
    membership = from_row(Membership, row[:width])
    membership.project = from_row(Project, row[width:])
    return membership


def project_list_managed_by(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects `user` may manage: all for a superuser, else those where they are a manager."""
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user, memberships__role=Membership.Role.MANAGER)


def label_list(*, project: Project) -> QuerySet[Label]:
    return Label.objects.filter(project=project).order_by("order", "id")


def label_names(*, project: Project) -> list[str]:
    """The project's label names, in their order (what values are validated against)."""
    return list(label_list(project=project).values_list("name", flat=True))


def membership_list(*, project: Project) -> QuerySet[Membership]:
    """Members of the project with their annotation counts."""
    return (
        Membership.objects.filter(project=project)
        .select_related("user")
        .annotate(annotation_count=Count("user__annotations", filter=Q(user__annotations__project=project)))
        .order_by("id")
    )


def annotations_with_label(*, label: Label) -> QuerySet[Annotation]:
    """Annotations of the label's project whose value chooses this label."""
    qs = Annotation.objects.filter(project_id=label.project_id)
    if connection.vendor == "postgresql":
        return qs.filter(value__choices__contains=[label.name])
    # SQLite has no JSON containment lookup; json_each does the same job.
    return qs.filter(
        ExpressionWrapper(
            RawSQL(
                f"EXISTS (SELECT 1 FROM json_each({Annotation._meta.db_table}.value, '$.choices') AS c"
                " WHERE c.value = %s)",
                [label.name],
            ),
            output_field=BooleanField(),
        )
    )


# Services --------------------------------------------------------------------------------


@transaction.atomic
def project_create(
    *,
    name: str,
    task_type: str,
    created_by: AbstractBaseUser,
    labels: list[str] | list[dict] = (),
    **fields,
) -> Project:
    """Create a project, make its creator a manager and add its labels (hotkeys 1–9, 0, q–p)."""
    unknown = set(fields) - set(PROJECT_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a project field"})
    project = Project(name=name, task_type=task_type, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    Membership.objects.create(project=project, user=created_by, role=Membership.Role.MANAGER)
    for position, spec in enumerate(labels):
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        spec.setdefault("order", position)
        if "hotkey" not in spec and position < len(DEFAULT_HOTKEYS):
            spec["hotkey"] = DEFAULT_HOTKEYS[position]
        label_create(project=project, **spec)
    return project


@transaction.atomic
def project_update(*, project: Project, **fields) -> Project:
    """Change project settings; a new overlap re-derives which items are complete.

    Old values come from the locked row, not from `project`, which a form may already have changed.
    """
    unknown = set(fields) - set(PROJECT_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a project field"})
    current = Project.objects.select_for_update().get(pk=project.pk)
    old_overlap = current.overlap
    old_consensus = current.consensus_method
    changes_type = "task_type" in fields and fields["task_type"] != current.task_type
    if changes_type and current.items.exists():
        raise ValidationError({"task_type": "cannot change the task type of a project with items"})
    for key, value in fields.items():
        setattr(current, key, value)
    current.full_clean()
    current.save()
    for key in fields:
        setattr(project, key, getattr(current, key))
    if current.overlap > old_overlap:
        # Items complete before may be open again, behind annotators' bookmarks.
        queue_order_changed(project_id=current.pk)
    if current.overlap != old_overlap:
        ordinary = Item.objects.filter(project=current).exclude(
            pick_kind=PickKind.GOLD
        )  # gold stays complete
        ordinary.update(
            is_complete=ExpressionWrapper(
                Q(annotation_count__gte=current.overlap), output_field=BooleanField()
            )
        )
        # Unreviewed items wait for review exactly when complete; then the tallies are recounted
        # (progress counts completed items). Overlap changes are rare; a recount is exact.
        ordinary.filter(is_complete=False, review_state=ReviewState.QUEUED, last_review__isnull=True).update(
            review_state=ReviewState.NONE
        )
        models = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}
        project_quality_rebuild(project=current, models=models)
    if current.consensus_method != old_consensus or (
        current.overlap != old_overlap and current.consensus_method != "majority"
    ):
        # The final labels follow the method now (in the background, once this commits).
        project_consensus_request(project=current)
    return current


# What the deletion page names first, by "app_label.ModelName"; other models follow.
DELETION_ORDER = (
    "annotate.Item",
    "annotate.Annotation",
    "annotate.Review",
    "training.ModelVersion",
    "training.Prediction",
    "training.TrainingRun",
    "annotate.ImportJob",
    "annotate.ExportJob",
)
# Bookkeeping recounted from the rows above, not something a lead would miss: not listed.
DELETION_UNLISTED = {"annotate.Tally"}


def project_deletion_counts(*, project: Project) -> list[tuple[str, int]]:
    """What deleting `project` takes, as (what, how many), the named kinds first; "image files"
    counts the items' images in the storage.

    The models come from the cascade graph in Django's model metadata (the path the deletion's
    collector walks), so training's rows are counted without annotate importing training; each
    is one COUNT by its shortest path to the project, none is loaded."""
    paths: dict[type[models.Model], str] = {}
    queue = deque([(Project, "")])
    seen = {Project}
    while queue:
        model, path = queue.popleft()
        for rel in model._meta.related_objects:
            if rel.many_to_many or rel.on_delete is not models.CASCADE:
                continue
            child = rel.related_model
            if child in seen:
                continue
            seen.add(child)
            child_path = f"{rel.field.name}__{path}" if path else rel.field.name
            paths[child] = child_path
            queue.append((child, child_path))
    counts = {}
    for model, path in paths.items():
        if model._meta.label in DELETION_UNLISTED:
            continue
        n = model._default_manager.filter(**{path: project.pk}).count()
        if n:
            counts[model._meta.label] = (str(model._meta.verbose_name_plural), n)
    rank = {label: i for i, label in enumerate(DELETION_ORDER)}
    rows = [counts[label] for label in sorted(counts, key=lambda label: (rank.get(label, len(rank)), label))]
    images = Item.objects.filter(project=project).exclude(image="").count()
    if images:
        rows.insert(1, ("image files", images))
    return rows


def _project_file_names(project: Project) -> list[tuple[object, str]]:
    """(storage, name) of every file the project's rows name: item images, import uploads,
    export files (model versions' files are training's: its post_delete receiver removes them)."""
    files = []
    for model, field_name in ((Item, "image"), (ImportJob, "upload"), (ExportJob, "file")):
        storage = model._meta.get_field(field_name).storage
        names = (
            model.objects.filter(project=project)
            .exclude(**{field_name: ""})
            .values_list(field_name, flat=True)
        )
        files.extend((storage, name) for name in names.iterator(chunk_size=2000))
    return files


def _files_delete(files: list[tuple[object, str]]) -> None:
    for storage, name in files:
        try:
            storage.delete(name)
        except Exception:  # a file already gone, or a storage hiccup: the rows are gone either way
            logger.warning("could not delete %s from the storage", name, exc_info=True)


def project_delete(*, project: Project, actor: AbstractBaseUser | None = None) -> None:
    """Delete a project with everything in it: items, leases, annotations, skips, jobs, and (in
    training) its versions, predictions and runs; the files its rows name go once this commits.
    The audit event, with what went, outlives it."""
    with transaction.atomic():
        counts = project_deletion_counts(project=project)
        files = _project_file_names(project)
        audit_record(
            actor=actor,
            project=project,
            action=Action.PROJECT_DELETED,
            detail={"name": project.name, "counts": dict(counts)},
        )
        project.delete()
        transaction.on_commit(lambda: _files_delete(files))


def _hotkey_check(hotkey) -> None:
    if isinstance(hotkey, str) and hotkey.lower() in RESERVED_HOTKEYS:
        action = RESERVED_HOTKEYS[hotkey.lower()]
        message = f"{hotkey!r} is the labeling page's key for {action}; choose another"
        raise ValidationError({"hotkey": message})


def label_create(*, project: Project, name: str, **fields) -> Label:
    """Add a label to the project."""
    unknown = set(fields) - set(LABEL_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a label field"})
    _hotkey_check(fields.get("hotkey"))
    if "order" not in fields:
        fields["order"] = project.labels.count()
    fields.setdefault("colour", label_colour(fields["order"]))
    label = Label(project=project, name=name.strip(), **fields)
    label.full_clean()
    label.save()
    return label


@transaction.atomic
def label_update(*, label: Label, **fields) -> Label:
    """Change a label. A rename rewrites its name in the annotations that use it, so none is lost.

    The old name comes from the locked row, not from `label`, which a form may already have changed.
    """
    unknown = set(fields) - set(LABEL_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a label field"})
    current = Label.objects.select_for_update().get(pk=label.pk)
    if "hotkey" in fields and fields["hotkey"] != current.hotkey:
        _hotkey_check(fields["hotkey"])
    old_name = current.name
    for key, value in fields.items():
        setattr(current, key, value.strip() if key == "name" else value)
    current.full_clean()
    if current.name != old_name:
        _rename_in_annotations(
            label=Label(pk=current.pk, project_id=current.project_id, name=old_name), new_name=current.name
        )
    current.save()
    return current


def _rename_in_annotations(*, label: Label, new_name: str) -> None:
    """Caller holds a transaction. Replace the label's old name in stored values and proposals."""

    def renamed(value: dict | None) -> dict | None:
        if not value or label.name not in value.get("choices", []):
            return value
        return {**value, "choices": [new_name if c == label.name else c for c in value["choices"]]}

    batch = []
    for annotation in (
        annotations_with_label(label=label).only("id", "value", "proposal_value").iterator(chunk_size=2000)
    ):
        annotation.value = renamed(annotation.value)
        annotation.proposal_value = renamed(annotation.proposal_value)
        batch.append(annotation)
        if len(batch) >= 2000:
            Annotation.objects.bulk_update(batch, ["value", "proposal_value"])
            batch = []
    if batch:
        Annotation.objects.bulk_update(batch, ["value", "proposal_value"])
    # The values kept on items and decisions, then the final labels and tallies recounted
    # (their keys hold label names): a rename is rare, and it must leave nothing behind.
    item_fields = ["gold_value", "reviewed_value", "suspect_value"]
    items = Item.objects.filter(project_id=label.project_id).exclude(
        gold_value__isnull=True, reviewed_value__isnull=True, suspect_value__isnull=True
    )
    changed = []
    for item in items.only("id", *item_fields).iterator(chunk_size=2000):
        for field in item_fields:
            setattr(item, field, renamed(getattr(item, field)))
        changed.append(item)
    Item.objects.bulk_update(changed, item_fields, batch_size=2000)
    reviews = list(
        Review.objects.filter(project_id=label.project_id, value__isnull=False).only("id", "value")
    )
    for review in reviews:
        review.value = renamed(review.value)
    Review.objects.bulk_update(reviews, ["value"], batch_size=2000)
    project = Project.objects.get(pk=label.project_id)
    models = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}
    # The label's row still has its old name here: the recount must see the new one.
    Label.objects.filter(pk=label.pk).update(name=new_name)
    project_quality_rebuild(project=project, models=models)
    if project.consensus_method != "majority":
        project_consensus_request(project=project)  # the recount is the majority's


@transaction.atomic
def label_delete(*, label: Label) -> None:
    """Delete a label that no annotation uses; refuse with the count otherwise (read from the locked row)."""
    label = Label.objects.select_for_update().get(pk=label.pk)
    in_use = annotations_with_label(label=label).count()
    gold = [
        value for value in Item.objects.filter(project_id=label.project_id, pick_kind=PickKind.GOLD)
        .values_list("gold_value", flat=True)
        if label.name in (value or {}).get("choices", [])
    ]  # fmt: skip
    if gold:
        raise ValidationError(
            f"label {label.name!r} is the true value of {len(gold)} gold item{'s' if len(gold) != 1 else ''};"
            " it cannot be deleted (rename it instead)"
        )
    if in_use:
        raise ValidationError(
            f"label {label.name!r} is used by {in_use} annotation{'s' if in_use != 1 else ''}; "
            "it cannot be deleted (rename it instead)"
        )
    label.delete()


def membership_add(
    *, project: Project, user: AbstractBaseUser, role: str, actor: AbstractBaseUser | None = None
) -> Membership:
    """Add `user` to the project with `role` (or change their role if already a member)."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Membership.Role.values)}"})
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(
            project=project, user=user, defaults={"role": role}
        )
        if created:
            audit_record(
                actor=actor,
                project=project,
                action=Action.MEMBER_ADDED,
                detail={"member": user.username, "role": role},
            )
        elif membership.role != role:
            return membership_update(membership=membership, role=role, actor=actor)
    return membership


def _member_detail(membership: Membership, **more) -> dict:
    return {"member": membership.user.username, **more}


@transaction.atomic
def membership_update(
    *, membership: Membership, role: str, actor: AbstractBaseUser | None = None
) -> Membership:
    """Change a member's role; a project always keeps at least one manager."""
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"must be one of {', '.join(Membership.Role.values)}"})
    if membership.role == Membership.Role.MANAGER and role != Membership.Role.MANAGER:
        _ensure_another_manager(membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    if old != role:
        audit_record(
            actor=actor,
            project=membership.project,
            action=Action.ROLE_CHANGED,
            detail=_member_detail(membership, **{"from": old, "to": role}),
        )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: AbstractBaseUser | None = None) -> None:
    """Remove a member; their annotations stay. The last manager cannot be removed."""
    if membership.role == Membership.Role.MANAGER:
        _ensure_another_manager(membership)
    audit_record(
        actor=actor,
        project=membership.project,
        action=Action.MEMBER_REMOVED,
        detail=_member_detail(membership, role=membership.role),
    )
    membership.delete()


@transaction.atomic
def membership_pause(
    *, membership: Membership, reason: str = "", actor: AbstractBaseUser | None = None
) -> Membership:
    """Pause a member in their project: their queue serves nothing, and says `reason`.

    The automatic gold pause does not come through here (annotate/queue_gold.py)."""
    membership.paused = True
    membership.paused_reason = (reason or "").strip()[:300] or "a lead paused you in this project"
    membership.save(update_fields=["paused", "paused_reason"])
    audit_record(
        actor=actor,
        project=membership.project,
        action=Action.MEMBER_PAUSED,
        detail=_member_detail(membership, reason=membership.paused_reason),
    )
    return membership


@transaction.atomic
def membership_resume(*, membership: Membership, actor: AbstractBaseUser | None = None) -> Membership:
    """Resume a paused member. Below the gold bar, their next gold answer pauses them again."""
    was_paused = membership.paused
    membership.paused, membership.paused_reason = False, ""
    membership.save(update_fields=["paused", "paused_reason"])
    if was_paused:
        audit_record(
            actor=actor,
            project=membership.project,
            action=Action.MEMBER_RESUMED,
            detail=_member_detail(membership),
        )
    return membership


def membership_change(
    *,
    membership: Membership,
    role: str | None = None,
    paused: bool | None = None,
    paused_reason: str = "",
    actor: AbstractBaseUser | None = None,
) -> Membership:
    """A new role and/or the pause, all or nothing: a refused demotion leaves the pause as it was.

    A refusal that names no field (the project's last manager) is reported under `role`, the
    field that asked for it."""
    try:
        with transaction.atomic():
            if role is not None and role != membership.role:
                membership = membership_update(membership=membership, role=role, actor=actor)
            if paused is True:
                membership = membership_pause(membership=membership, reason=paused_reason, actor=actor)
            elif paused is False and membership.paused:
                membership = membership_resume(membership=membership, actor=actor)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            raise
        raise ValidationError({"role": error.messages}) from error
    return membership


def _ensure_another_manager(membership: Membership) -> None:
    others = (
        Membership.objects.select_for_update()
        .filter(project_id=membership.project_id, role=Membership.Role.MANAGER)
        .exclude(pk=membership.pk)
    )
    if not others.exists():
        raise ValidationError("a project needs at least one manager: add another manager first")


def project_progress(*, project: Project, user: AbstractBaseUser | None = None) -> dict:
    """Item counts of the project (total, complete, labeled, in progress, skipped); with `user`, theirs."""
    from annotate.models import Skip

    totals = Item.objects.filter(project=project).aggregate(
        total=Count("id"),
        complete=Count("id", filter=Q(is_complete=True)),
        labeled=Count("id", filter=Q(annotation_count__gt=0)),
        in_progress=Count("id", filter=Q(lease_count__gt=0)),
    )
    totals["skipped"] = Skip.objects.filter(project=project).values("item_id").distinct().count()
    totals["annotations"] = Annotation.objects.filter(project=project).count()
    totals["percent"] = round(100 * totals["complete"] / totals["total"]) if totals["total"] else 0
    if user is not None:
        totals["mine"] = Annotation.objects.filter(project=project, annotator=user).count()
        totals["my_skips"] = Skip.objects.filter(project=project, annotator=user).count()
    return totals
