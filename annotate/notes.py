"""Notes on items: an annotator's comment, or a flag for the project's leads ("this image is
broken", "the guideline does not cover this"). Any member may write one on any item of the
project; the leads see open flags in the item browser (filter `flagged`) and every note on the
item's page, and resolve a flag once it is dealt with. Notes are append-only (ItemNote).
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from annotate.models import Item, ItemNote, Project

NOTE_MAX_LENGTH = 2000


class NoteTargetMissing(LookupError):
    """The item (or the note) is not one of this project's: the API answers 404."""


def item_note_add(
    *,
    project: Project,
    item_id: int,
    author: AbstractBaseUser,
    text: str,
    flagged: bool = False,
) -> ItemNote:
    """Store a comment on an item of `project`, or (`flagged`) a flag for its leads.

    ValidationError naming `text` when it is empty or too long; NoteTargetMissing when the item
    is not the project's.
    """
    if not isinstance(text, str):
        raise ValidationError({"text": "must be a string"})
    text = text.strip()
    if not text:
        what = "a flag says what the lead should look at" if flagged else "a comment needs some text"
        raise ValidationError({"text": f"must not be empty: {what}"})
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationError({"text": f"must be at most {NOTE_MAX_LENGTH} characters (it has {len(text)})"})
    if "\x00" in text:
        raise ValidationError({"text": "must not contain NUL characters"})
    if not Item.objects.filter(project=project, pk=item_id).exists():
        raise NoteTargetMissing(f"item {item_id} is not an item of this project")
    return ItemNote.objects.create(
        project=project, item_id=item_id, author=author, text=text, flagged=bool(flagged)
    )


def item_note_resolve(
    *, project: Project, item_id: int, note_id: int, now: datetime | None = None
) -> ItemNote:
    """Mark an open flag on an item of `project` resolved (a lead dealt with it).

    NoteTargetMissing when the note is not a note of that item; ValidationError naming `note`
    when it is a plain comment or resolved already.
    """
    note = ItemNote.objects.filter(project=project, item_id=item_id, pk=note_id).first()
    if note is None:
        raise NoteTargetMissing(f"note {note_id} is not a note of item {item_id}")
    if not note.flagged:
        raise ValidationError(
            {"note": f"note {note_id} is a comment, not a flag: there is nothing to resolve"}
        )
    moment = now or timezone.now()
    # Conditional, so that of two leads resolving at once one is told it was done already.
    if not ItemNote.objects.filter(pk=note.pk, resolved_at__isnull=True).update(resolved_at=moment):
        raise ValidationError({"note": f"the flag {note_id} is resolved already"})
    note.resolved_at = moment
    return note


def item_notes(*, item: Item) -> QuerySet[ItemNote]:
    """The item's notes with their authors, oldest first."""
    return ItemNote.objects.filter(item=item).select_related("author").order_by("id")


def open_flag_count(*, project: Project) -> int:
    """How many flags of the project wait for a lead (note_open_flag_idx's rows)."""
    return ItemNote.objects.filter(project=project, flagged=True, resolved_at__isnull=True).count()
