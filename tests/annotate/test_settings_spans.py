"""The settings page's span settings: shown and saved on span projects only; a text
classification project's save leaves them alone. Gold values of boxes and spans are given as JSON."""

import pytest
from django.urls import reverse

from annotate.models import Item, Project
from tests.annotate.test_members_pages import _settings_data
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(client):
    user = UserFactory()
    client.force_login(user)
    return user


def _project(lead, task_type: str) -> Project:
    project = make_project(labels=["PER", "ORG"], task_type=task_type, members=[])
    project.memberships.filter(role="manager").update(user=lead)
    return project


def test_span_settings_are_on_span_projects_only_and_saved(client, lead):
    spans = _project(lead, Project.TaskType.TEXT_SPANS)
    page = client.get(reverse("annotate:settings", args=[spans.pk]))
    assert 'name="spans_snap_to_tokens"' in page.text and 'name="spans_may_overlap"' in page.text

    # Unchecked boxes are absent from a form post: snapping off, overlaps on.
    response = client.post(
        reverse("annotate:settings", args=[spans.pk]), _settings_data(spans, spans_may_overlap="on")
    )
    assert response.status_code == 302
    spans.refresh_from_db()
    assert (spans.spans_snap_to_tokens, spans.spans_may_overlap) == (False, True)

    text = _project(lead, Project.TaskType.TEXT_CLASSIFICATION)
    page = client.get(reverse("annotate:settings", args=[text.pk]))
    assert 'name="spans_snap_to_tokens"' not in page.text
    assert client.post(reverse("annotate:settings", args=[text.pk]), _settings_data(text)).status_code == 302
    text.refresh_from_db()
    assert text.spans_snap_to_tokens is True


def test_a_span_gold_value_is_given_as_json_and_checked(client, lead):
    spans = _project(lead, Project.TaskType.TEXT_SPANS)
    item = spans.items.create(external_id="g1", text="Ana works at Acme.")
    url = reverse("annotate:gold-mark", args=[spans.pk])
    bad = client.post(url, {"item": "g1", "labels": '{"spans": [{"start": 0, "end": 3, "label": "DOG"}]}'})
    assert bad.status_code == 400 and "unknown label" in bad.text
    assert Item.objects.get(pk=item.pk).gold_value is None
    good = client.post(url, {"item": "g1", "labels": '{"spans": [{"start": 13, "end": 17, "label": "ORG"}]}'})
    assert good.status_code == 302
    assert Item.objects.get(pk=item.pk).gold_value == {"spans": [{"start": 13, "end": 17, "label": "ORG"}]}
