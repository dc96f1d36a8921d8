"""The training app; its ready() connects the receiver of annotate's annotations_stored signal."""

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # annotate never imports training: it announces stored annotations, training listens.
        from annotate.signals import annotations_stored
        from training.runs import training_auto_request_receiver

        annotations_stored.connect(training_auto_request_receiver, dispatch_uid="training_auto_request")
