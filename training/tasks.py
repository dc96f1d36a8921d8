"""Celery tasks of the training app: thin wrappers that call training services (later issues)."""
