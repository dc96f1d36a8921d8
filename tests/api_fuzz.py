"""What the API fuzz needs, shared by the suite's pass (tests/config/test_api_fuzz.py) and the
bench's (bench/bench_api_fuzz.py): the schema, a project to point the generated ids at, and one
call checked by name."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# The checks the issue names, and only those.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# One generated id in KEEP is left as generated (an id that matches nothing), as is anything that
# is not an id at all; the others are pointed at the world's own rows.
KEEP = 5


def api_schema() -> schemathesis.BaseSchema:
    """The OpenAPI schema the studio serves at /api/schema/, calling the WSGI application in-process."""
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@contextmanager
def connections_kept() -> Iterator[None]:
    """Keep the database connection open across in-process requests, as Django's test client does:
    a WSGI request closes it when it finishes, and the test's transaction with it."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class FuzzWorld:
    """A project with a manager and an annotator, items, labels, an annotation, an export job and a
    training run: the rows a generated path id is pointed at. `token` is the requester's."""

    role: str
    token: str
    ids: dict[str, list[int]] = field(default_factory=dict)

    def point(self, case) -> None:
        """Point most generated path ids at the world's rows, deterministically from the generated
        value, so that derandomized runs stay the same. An id in the schema is an integer, but a
        phase may send it as its digits."""
        for name, value in (case.path_parameters or {}).items():
            real = self.ids.get(name)
            if isinstance(value, bool) or not real:
                continue
            if isinstance(value, str) and value.isascii() and value.isdigit():
                value = int(value)
            if isinstance(value, int) and value % KEEP != KEEP - 1:
                case.path_parameters[name] = real[value % len(real)]


def fuzz_world(*, role: str) -> FuzzWorld:
    """Build the world through the studio's own services; `role` ("manager" or "annotator") says
    whose token the requests carry."""
    from rest_framework.authtoken.models import Token

    from annotate.exporting.jobs import export_request
    from annotate.models import Project
    from annotate.queue import annotation_submit, assignment_next
    from tests.factories import UserFactory, make_project
    from training.models import TrainingRun
    from training.runs import training_run_request

    annotator = UserFactory()
    reviewer = UserFactory()
    project = make_project(
        labels=["alpha", "beta", "gamma"],
        items=12,
        members=[(annotator, "annotator"), (reviewer, "reviewer")],
        name=f"Fuzzed project {role}",
        task_type=Project.TaskType.TEXT_CLASSIFICATION,
    )
    manager = project.memberships.get(role="manager").user
    for choice in ("alpha", "beta"):
        lease = assignment_next(project=project, annotator=annotator)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": [choice]}
        )
    export_request(project=project, format="json", requested_by=manager, background=True)
    training_run_request(project=project, trigger="fuzz", requested_by=manager)
    requester = manager if role == "manager" else annotator
    ids = {
        "project_id": [project.pk],
        "item_id": list(project.items.values_list("pk", flat=True)),
        "label_id": list(project.labels.values_list("pk", flat=True)),
        "membership_id": list(project.memberships.values_list("pk", flat=True)),
        "job_id": [
            *project.export_jobs.values_list("pk", flat=True),
            *project.import_jobs.values_list("pk", flat=True),
        ],
        "run_id": list(TrainingRun.objects.filter(project=project).values_list("pk", flat=True)),
    }
    return FuzzWorld(role=role, token=Token.objects.create(user=requester).key, ids=ids)


def fuzz_call(case, world: FuzzWorld, *, checks=CHECKS):
    """One generated request, sent as the world's requester and checked by name; returns the response."""
    world.point(case)
    response = case.call(headers={"Authorization": f"Token {world.token}"})
    case.validate_response(response, checks=checks, headers={"Authorization": f"Token {world.token}"})
    return response
