"""Accounts that hold (issue 17, item 2): login throttling by username and address together, in the
database (django-axes), on the login page, the admin's login and the token endpoint; tokens revoked
by their owner and rotated on a password change."""

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LIMIT = 5


def _page_login(address, username, password, url="/accounts/login/"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def _token(address, username, password):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_five_failures_lock_the_username_from_that_address_on_the_login_page():
    user, other = UserFactory(), UserFactory()
    for _ in range(LIMIT - 1):
        assert _page_login("10.0.0.1", user.username, "wrong").status_code == 200  # the form again
    assert _page_login("10.0.0.1", user.username, PASSWORD).status_code == 302  # a success clears them
    for _ in range(LIMIT):
        _page_login("10.0.0.1", user.username, "wrong")
    locked = _page_login("10.0.0.1", user.username, PASSWORD)
    assert locked.status_code == 429 and locked["Retry-After"] == "900"
    assert "Too many failed logins" in locked.text and "15 minutes" in locked.text
    # Not the address alone (everyone behind one NAT), nor the username from elsewhere.
    assert _page_login("10.0.0.1", other.username, PASSWORD).status_code == 302
    assert _page_login("10.0.0.2", user.username, PASSWORD).status_code == 302
    # Counted in the database, so every web process sees it.
    attempt = AccessAttempt.objects.get(username=user.username, ip_address="10.0.0.1")
    assert attempt.failures_since_start >= LIMIT


def test_the_token_endpoint_locks_the_same_way_with_a_json_429():
    user = UserFactory()
    for _ in range(LIMIT - 1):
        assert _token("10.0.0.3", user.username, "wrong").status_code == 400
    assert _token("10.0.0.3", user.username, "wrong").status_code == 429  # the fifth locks
    locked = _token("10.0.0.3", user.username, PASSWORD)
    assert locked.status_code == 429 and locked["Retry-After"] == "900"
    assert "too many failed logins" in locked.json()["detail"]
    assert not Token.objects.filter(user=user).exists()
    assert _token("10.0.0.4", user.username, PASSWORD).status_code == 200
    # The page shares the count: the pair is locked there too.
    assert _page_login("10.0.0.3", user.username, PASSWORD).status_code == 429


def test_the_admin_login_locks_too():
    staff = UserFactory(is_staff=True)
    for _ in range(LIMIT):
        _page_login("10.0.0.5", staff.username, "wrong", url="/admin/login/")
    assert _page_login("10.0.0.5", staff.username, PASSWORD, url="/admin/login/").status_code == 429


def test_a_token_is_revoked_by_its_owner():
    user = UserFactory()
    key = _token("10.0.0.6", user.username, PASSWORD).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/projects/").status_code == 200
    assert client.delete("/api/auth/token/").status_code == 204
    assert client.get("/api/projects/").status_code == 401
    assert APIClient().delete("/api/auth/token/").status_code == 401
    fresh = _token("10.0.0.6", user.username, PASSWORD).json()["token"]
    assert fresh != key


def test_a_password_change_ends_the_old_token():
    user, bystander = UserFactory(), UserFactory()
    key = _token("10.0.0.7", user.username, PASSWORD).json()["token"]
    kept = _token("10.0.0.7", bystander.username, PASSWORD).json()["token"]
    user.first_name = "Renamed"
    user.save()  # not a password change: the token stays
    assert Token.objects.filter(key=key).exists()
    user.set_password("a new long passphrase")
    user.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/projects/").status_code == 401
    assert Token.objects.filter(key=kept).exists()
    assert _token("10.0.0.7", user.username, "a new long passphrase").json()["token"] != key
