"""Input serializers parse a request; Output serializers render what a service or selector returns.

Inputs never save: a view passes their `validated_data` to one service. One module per part of
the API: common.py (errors, the auth token), projects.py (projects and labels), members.py
(members and gold items), items.py, queue.py (the queue and annotations), jobs.py (import and
export jobs) and review.py. Views import the package (`from annotate.api import serializers as
s`); the names below are its API, and the schema's component names are the class names.
"""

from annotate.api.serializers.audit import AuditEventOutput
from annotate.api.serializers.common import ErrorOutput, TokenOutput
from annotate.api.serializers.items import (
    MAX_ITEMS_PER_REQUEST,
    ItemCreateBulkInput,
    ItemCreateBulkOutput,
    ItemFilterInput,
    ItemOutput,
    ProposalOutput,
    QueueItemOutput,
    ReleaseOutput,
)
from annotate.api.serializers.jobs import ExportInput, ExportJobOutput, ImportInput, ImportJobOutput
from annotate.api.serializers.members import (
    GoldAccuracyOutput,
    GoldInput,
    GoldItemOutput,
    MemberAddInput,
    MemberOutput,
    MemberUpdateInput,
)
from annotate.api.serializers.projects import (
    LabelCreateInput,
    LabelOutput,
    LabelUpdateInput,
    ProjectCreateInput,
    ProjectDeletionOutput,
    ProjectDetailOutput,
    ProjectOutput,
    ProjectUpdateInput,
)
from annotate.api.serializers.queue import (
    MAX_EXCLUDED_ITEMS,
    AnnotationFilterInput,
    AnnotationInput,
    AnnotationOutput,
    AssignmentOutput,
    NextInput,
    NextOutput,
    ProposalInput,
    SkipInput,
    SkipOutput,
    SubmitAndNextInput,
    SubmitAndNextOutput,
    annotation_data,
    next_data,
)
from annotate.api.serializers.review import (
    ReviewAnnotationOutput,
    ReviewConflictOutput,
    ReviewDecisionInput,
    ReviewItemOutput,
    ReviewItemViewOutput,
    ReviewLeaseOutput,
    ReviewNextInput,
    ReviewOutput,
    ReviewReleaseInput,
    review_data,
)

__all__ = [
    "AuditEventOutput",
    "MAX_EXCLUDED_ITEMS",
    "MAX_ITEMS_PER_REQUEST",
    "AnnotationFilterInput",
    "AnnotationInput",
    "AnnotationOutput",
    "AssignmentOutput",
    "ErrorOutput",
    "ExportInput",
    "ExportJobOutput",
    "GoldAccuracyOutput",
    "GoldInput",
    "GoldItemOutput",
    "ImportInput",
    "ImportJobOutput",
    "ItemCreateBulkInput",
    "ItemCreateBulkOutput",
    "ItemFilterInput",
    "ItemOutput",
    "LabelCreateInput",
    "LabelOutput",
    "LabelUpdateInput",
    "MemberAddInput",
    "MemberOutput",
    "MemberUpdateInput",
    "NextInput",
    "NextOutput",
    "ProjectCreateInput",
    "ProjectDetailOutput",
    "ProjectOutput",
    "ProjectDeletionOutput",
    "ProjectUpdateInput",
    "ProposalInput",
    "ProposalOutput",
    "QueueItemOutput",
    "ReleaseOutput",
    "ReviewAnnotationOutput",
    "ReviewConflictOutput",
    "ReviewDecisionInput",
    "ReviewItemOutput",
    "ReviewItemViewOutput",
    "ReviewLeaseOutput",
    "ReviewNextInput",
    "ReviewOutput",
    "ReviewReleaseInput",
    "SkipInput",
    "SkipOutput",
    "SubmitAndNextInput",
    "SubmitAndNextOutput",
    "TokenOutput",
    "annotation_data",
    "next_data",
    "review_data",
]
