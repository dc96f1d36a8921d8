"""The API fuzzed against its own OpenAPI schema (issue 17, item 7): schemathesis 4 generates
requests for every operation of /api/schema/, as a project's manager and as its annotator, and
checks each answer by name — no 5xx, a status code the schema declares, the declared content type,
a body that conforms to the declared schema. In the suite: 20 examples per operation,
derandomized, no example database; `bench/bench_api_fuzz.py` runs 1,000 per operation.

The requests go in-process to the WSGI application, through the real database of this pass
(SQLite or PostgreSQL). Most path ids are pointed at the test's own project and its rows, so the
fuzzed bodies reach the handlers rather than stopping at a 404 (the rest keep their generated
value: ids that match nothing)."""

import pytest
from hypothesis import HealthCheck, settings

from tests.api_fuzz import CHECKS, api_schema, connections_kept, fuzz_call, fuzz_world

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

schema = api_schema()


@pytest.fixture(params=["manager", "annotator"])
def world(request, settings):
    settings.LABELLOOP_PREDICT_TIMEOUT = 0.2
    with connections_kept():
        yield fuzz_world(role=request.param)


@schema.parametrize()
@settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case, world):
    # fuzz_call raises schemathesis' failure group when any of the named checks fails; the status
    # is asserted here too, so the test states its bar itself.
    response = fuzz_call(case, world, checks=CHECKS)
    assert response.status_code < 500, (case.operation.label, response.status_code)
