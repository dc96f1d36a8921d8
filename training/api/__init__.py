"""Training's part of the REST API (namespace "api", beside annotate.api: see config/urls.py)."""
