"""The annotate app's models: labeling projects, their labels and members, items, leases,
annotations and skips, reviews, notes, tallies, and background imports and exports.

One module per sub-domain; every name is importable from here, as the rest of the code (and
the migrations, for `_new_salt` and `_item_upload_to`) has always imported it:

- projects.py: Project, Label, Membership;
- items.py: Item, Assignment, Annotation, Skip, and the choices FinalSource, PickKind,
  ReviewState (and Neg, the queue index's expression);
- quality.py: Review, ItemNote, Tally;
- jobs.py: ImportJob, ExportJob and their JobStatus;
- audit.py: AuditEvent (the leads' audit log).
"""

from annotate.models.audit import AuditEvent
from annotate.models.items import (
    Annotation,
    Assignment,
    FinalSource,
    Item,
    Neg,
    PickKind,
    ReviewState,
    Skip,
    _item_upload_to,
)
from annotate.models.jobs import ExportJob, ImportJob, JobStatus
from annotate.models.projects import Label, Membership, Project, _new_salt
from annotate.models.quality import ItemNote, Review, Tally

__all__ = [
    "Annotation",
    "Assignment",
    "AuditEvent",
    "ExportJob",
    "FinalSource",
    "ImportJob",
    "Item",
    "ItemNote",
    "JobStatus",
    "Label",
    "Membership",
    "Neg",
    "PickKind",
    "Project",
    "Review",
    "ReviewState",
    "Skip",
    "Tally",
    "_item_upload_to",
    "_new_salt",
]
