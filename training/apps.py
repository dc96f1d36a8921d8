"""The training app; its ready() connects the receivers of annotate's signals (annotations_stored,
items_imported) and registers the check of the sentence encoder (a project's text_model)."""

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # annotate never imports training: it announces stored annotations, training listens.
        from annotate.models.projects import TEXT_MODEL_CHECKS
        from annotate.signals import annotations_stored, items_imported
        from training.coldstart import cold_start_receiver
        from training.runs import training_auto_request_receiver

        TEXT_MODEL_CHECKS["encoder"] = _encoder_available
        annotations_stored.connect(training_auto_request_receiver, dispatch_uid="training_auto_request")
        items_imported.connect(cold_start_receiver, dispatch_uid="training_cold_start")


def _encoder_available() -> str | None:
    """training.backends.encoder.encoder_available, imported when a project asks for it (the web
    process stays light)."""
    from training.backends.encoder import encoder_available

    why = encoder_available()
    return None if why is None else f"the sentence encoder is not available here: {why}"
