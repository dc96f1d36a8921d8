"""The annotate app: projects, items, the queue, annotations, importing and exporting."""

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Annotation"

    def ready(self) -> None:
        # Every route's row ids (annotate/converters.py); URL confs are read after ready().
        from django.urls import register_converter

        from annotate.converters import DatabaseId

        register_converter(DatabaseId, "id")
        # An API token does not outlive its password (annotate/accounts.py).
        from django.conf import settings
        from django.db.models.signals import pre_save

        from annotate.accounts import token_revoke_on_password_change

        pre_save.connect(
            token_revoke_on_password_change,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="token_revoke_on_password",
        )
        # Dawid–Skene every N annotations: the same signal training's retrain-every-N listens to.
        from annotate.quality.recompute import project_consensus_auto_request_receiver
        from annotate.signals import annotations_stored

        annotations_stored.connect(
            project_consensus_auto_request_receiver, dispatch_uid="project_consensus_auto_request"
        )
