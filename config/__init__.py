"""The Django project; importing it loads the Celery app, so `celery -A config` finds it."""

from config.celery import app as celery_app

__all__ = ("celery_app",)
