"""The training app; its ready() connects the receivers of annotate's signals (annotations_stored,
items_imported)."""

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # annotate never imports training: it announces stored annotations, training listens.
        from annotate.signals import annotations_stored, items_imported
        from training.coldstart import cold_start_receiver
        from training.runs import training_auto_request_receiver

        annotations_stored.connect(training_auto_request_receiver, dispatch_uid="training_auto_request")
        items_imported.connect(cold_start_receiver, dispatch_uid="training_cold_start")
