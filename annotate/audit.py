"""The audit log of what leads need to see afterwards: exports, deletions, role changes and
other member changes, account deactivations, retraining. Services record (`audit_record`) inside
the transaction of the change, so that the page, the API and the admin all leave the same trace,
and a refused or rolled-back change leaves none. Not for the hot paths: submits are never logged.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotate.models import AuditEvent, Project

Action = AuditEvent.Action


def audit_record(
    *, actor: AbstractBaseUser | None, project: Project | None, action: str, detail: dict | None = None
) -> AuditEvent:
    """Store one event; `actor` None (or anonymous) is the system (an automatic retraining).

    Call it inside the change's transaction, after the change succeeded."""
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        project=project,
        project_name=project.name if project is not None else "",
        project_ref=project.pk if project is not None else None,
        action=Action(action),
        detail=detail or {},
    )


def audit_list(*, project: Project) -> QuerySet[AuditEvent]:
    """The project's events, newest first, with their actors."""
    return AuditEvent.objects.filter(project=project).select_related("actor").order_by("-id")


def _role(value) -> str:
    from annotate.models import Membership

    try:
        return Membership.Role(value).label.lower()
    except ValueError:
        return str(value)


def audit_describe(event: AuditEvent) -> str:
    """The event's detail in words ("bob: annotator → reviewer")."""
    d = event.detail or {}
    member = d.get("member", "?")
    if event.action == Action.EXPORT:
        words = f"{str(d.get('format', '?')).upper()} export"
        flags = [name for name, key in (("labeled only", "labeled_only"), ("reviewed only", "reviewed_only"))
                 if d.get(key)]  # fmt: skip
        if d.get("selection"):
            flags.append("a selection of items")
        if flags:
            words += f" ({', '.join(flags)})"
        return words + (f", background job {d['job']}" if d.get("job") else ", streamed")
    if event.action == Action.PROJECT_DELETED:
        counts = d.get("counts") or {}
        shown = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        return f"deleted {d.get('name') or event.project_name!r}" + (f" with {shown}" if shown else "")
    if event.action == Action.ROLE_CHANGED:
        return f"{member}: {_role(d.get('from'))} → {_role(d.get('to'))}"
    if event.action == Action.MEMBER_ADDED:
        return f"{member} added as {_role(d.get('role'))}"
    if event.action == Action.MEMBER_REMOVED:
        return f"{member} removed (was {_role(d.get('role'))})"
    if event.action == Action.MEMBER_PAUSED:
        return f"{member} paused: {d.get('reason', '')}"
    if event.action == Action.MEMBER_RESUMED:
        return f"{member} may label again"
    if event.action == Action.ACCOUNT_DEACTIVATED:
        return f"{member}'s account deactivated"
    if event.action == Action.RETRAINING_REQUESTED:
        return f"training run {d.get('run', '?')} queued ({d.get('trigger', '?')})"
    if event.action == Action.MODEL_ACTIVATED:
        return f"version {d.get('version', '?')} to be activated by run {d.get('run', '?')}"
    return ", ".join(f"{key}: {value}" for key, value in d.items())
