"""Deactivating accounts (issue 17, item 2): staff may deactivate any account; a lead only one
whose every membership is in projects they manage. Deactivation ends the account's sessions and
tokens at once, through the API and the members page; a refusal says why and changes nothing."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Annotation
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    lead, annotator = UserFactory(), UserFactory()
    project = make_project(labels=["a", "b"], items=2, members=[(annotator, "annotator")])
    project.memberships.filter(role="manager").update(user=lead)
    api = APIClient(raise_request_exception=False)
    api.force_login(lead)
    return project, lead, annotator, api


def _signed_in(user):
    """A browser session and an API token of `user`, both working now."""
    session = Client()
    session.force_login(user)
    token = Token.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert session.get("/").status_code == 200 and api.get("/api/projects/").status_code == 200
    return session, api


def _deactivate(api, project, user):
    membership = project.memberships.get(user=user)
    return api.post(f"/api/projects/{project.pk}/members/{membership.pk}/deactivate/")


def test_a_lead_deactivates_an_account_that_is_only_in_their_projects_ending_its_sessions_and_tokens(setup):
    project, _, annotator, api = setup
    session, token_api = _signed_in(annotator)
    response = _deactivate(api, project, annotator)
    assert response.status_code == 200, response.content
    annotator.refresh_from_db()
    assert not annotator.is_active and not Token.objects.filter(user=annotator).exists()
    # The old session is anonymous now, and the token is gone.
    assert session.get("/").status_code == 302
    assert token_api.get("/api/projects/").status_code == 401


def test_a_lead_may_not_deactivate_an_account_that_is_also_elsewhere(setup):
    project, _, annotator, api = setup
    make_project(labels=["x"], members=[(annotator, "annotator")])  # someone else's project
    session, token_api = _signed_in(annotator)
    response = _deactivate(api, project, annotator)
    assert response.status_code == 400
    assert "also a member of 1 project(s) you do not manage" in response.json()["detail"]
    annotator.refresh_from_db()
    assert annotator.is_active and Token.objects.filter(user=annotator).exists()
    assert session.get("/").status_code == 200


def test_staff_deactivate_any_account_and_no_one_their_own(setup):
    project, lead, annotator, api = setup
    make_project(labels=["x"], members=[(annotator, "annotator")])
    staff_user = UserFactory(is_staff=True)
    project.memberships.create(user=staff_user, role="manager")
    staff = APIClient(raise_request_exception=False)
    staff.force_login(staff_user)
    assert _deactivate(staff, project, annotator).status_code == 200
    annotator.refresh_from_db()
    assert not annotator.is_active
    response = _deactivate(staff, project, staff_user)
    assert response.status_code == 400 and "your own account" in response.json()["detail"]
    # A lead cannot deactivate staff.
    response = _deactivate(api, project, staff_user)
    assert (
        response.status_code == 400 and "only staff deactivate a staff account" in response.json()["detail"]
    )
    staff_user.refresh_from_db()
    assert staff_user.is_active and lead.is_active


def test_an_annotator_cannot_deactivate_anyone(setup):
    project, lead, annotator, _ = setup
    api = APIClient(raise_request_exception=False)
    api.force_login(annotator)
    assert _deactivate(api, project, lead).status_code == 403
    lead.refresh_from_db()
    assert lead.is_active


def test_the_members_page_deactivates_and_keeps_the_annotations(setup):
    project, lead, annotator, _ = setup
    from annotate.queue import annotation_submit, assignment_next

    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(project=project, item_id=lease.item.pk, annotator=annotator, value={"choices": ["a"]})
    page = Client()
    page.force_login(lead)
    membership = project.memberships.get(user=annotator)
    assert "Deactivate account" in page.get(f"/projects/{project.pk}/members/").content.decode()
    response = page.post(
        f"/projects/{project.pk}/members/{membership.pk}/", {"action": "deactivate"}, follow=True
    )
    assert response.status_code == 200
    assert f"{annotator.username}&#x27;s account is deactivated" in response.content.decode()
    annotator.refresh_from_db()
    assert not annotator.is_active and Annotation.objects.filter(annotator=annotator).count() == 1
    assert "account deactivated" in response.content.decode()
