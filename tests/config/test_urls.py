"""Site-wide URLs outside the apps."""

import pytest
from django.contrib.staticfiles import finders
from django.test import Client


@pytest.mark.django_db
def test_favicon_ico_leads_to_the_studio_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("annotate/favicon.svg")
    assert finders.find("annotate/favicon.svg")
