"""The training app; its ready() connects the receivers of annotate's signals (annotations_stored,
items_imported) and registers the checks annotate's Project.clean asks for: the sentence encoder's
(a project's text_model) and the hyper-parameters' (its training_params)."""

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # annotate never imports training: it announces stored annotations, training listens.
        from annotate.models.projects import (
            TEXT_MODEL_CHECKS,
            TRAINING_PARAMS_CHECK,
            TRAINING_PARAMS_DESCRIBE,
        )
        from annotate.signals import annotations_stored, items_imported
        from training.coldstart import cold_start_receiver
        from training.runs import training_auto_request_receiver

        TEXT_MODEL_CHECKS["encoder"] = _encoder_available
        TRAINING_PARAMS_CHECK[:] = [_training_params_check]
        TRAINING_PARAMS_DESCRIBE[:] = [_training_params_describe]
        annotations_stored.connect(training_auto_request_receiver, dispatch_uid="training_auto_request")
        items_imported.connect(cold_start_receiver, dispatch_uid="training_cold_start")


def _encoder_available() -> str | None:
    """training.backends.encoder.encoder_available, imported when a project asks for it (the web
    process stays light)."""
    from training.backends.encoder import encoder_available

    why = encoder_available()
    return None if why is None else f"the sentence encoder is not available here: {why}"


def _training_params_check(project) -> str | None:
    """training.hyperparams.params_check for the backend that trains `project`."""
    from training.hyperparams import params_check
    from training.versions import NoModelForTask, backend_for_project, model_training_check

    try:
        model_training_check(project=project)
        params_check(backend_for_project(project), project.training_params)
    except NoModelForTask as exc:
        return f"{exc}: there are no parameters to set"
    except ValueError as exc:
        return str(exc)
    return None


def _training_params_describe(project) -> str:
    """The parameters a lead may set on `project` (training.hyperparams.params_describe)."""
    from training.hyperparams import params_describe
    from training.versions import NoModelForTask, backend_for_project, model_training_check

    try:
        model_training_check(project=project)
    except NoModelForTask as exc:
        return f"{exc}: there are no parameters to set"
    return f"{backend_for_project(project)}: {params_describe(backend_for_project(project))}"
