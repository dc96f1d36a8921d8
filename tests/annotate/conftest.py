"""Fixtures the annotate tests share."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory, make_project


def lead_api_make(*, items: int):
    """(project, client): a project with labels a and b and `items` items, and an API client of its
    manager (a token and a session) that answers a server error as a response, not a raise."""
    lead = UserFactory()
    project = make_project(labels=["a", "b"], items=items, members=[])
    project.memberships.filter(role="manager").update(user=lead)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    client.force_login(lead)
    return project, client


@pytest.fixture
def lead_api():
    """A manager's project of 3 items and their API client (`lead_api_make`)."""
    return lead_api_make(items=3)


@pytest.fixture
def lead_api_empty():
    """A manager's project with no items and their API client (`lead_api_make`)."""
    return lead_api_make(items=0)
