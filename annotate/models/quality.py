"""What label quality keeps beside the annotations: reviewers' decisions, annotators' notes and
flags, and the per-project tallies the dashboards read."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.models.items import Annotation, Item
from annotate.models.projects import Project


class Review(models.Model):
    """One reviewer's decision on an item. Append-only: a later decision supersedes (and may
    reverse) this one; the item's `last_review` is the one in force."""

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accept"
        CORRECT = "correct", "Correct"
        REJECT = "reject", "Reject"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    # The annotation accepted or rejected (none for a correction).
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviews"
    )
    # The final value the decision puts in force (accept, correct); none for a reject.
    value = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    supersedes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # What the decision counted for each annotator ({annotator id: outcome}), so that a later
    # decision takes exactly that back from the dashboards' tallies.
    outcomes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    # A reject's annotator has seen its reason (the labeling page shows it once).
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.decision} of item {self.item_id} by {self.reviewer_id}"


class ItemNote(models.Model):
    """An annotator's comment on an item, or a flag for the project's leads. Append-only; a lead
    resolves a flag by setting `resolved_at`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notes", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(blank=True)
    flagged = models.BooleanField(default=False, help_text="Flagged for the project's leads.")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=Q(flagged=True, resolved_at__isnull=True),
                name="note_open_flag_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{'flag' if self.flagged else 'note'} on item {self.item_id} by {self.author_id}"


class Tally(models.Model):
    """A per-project counter kept up to date incrementally (agreement counts, dashboards):
    `n` of `key` in `kind`. annotate/quality/tallies.py adds to them in the transaction of the
    change, so pages read a few rows instead of scanning every annotation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tallies", db_index=False)
    kind = models.CharField(max_length=24)
    key = models.CharField(max_length=400)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "kind", "key"], name="tally_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} = {self.n}"
