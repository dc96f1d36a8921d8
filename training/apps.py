"""The training app; its ready() connects the receivers of annotate's signals (annotations_stored,
items_imported) and registers the checks annotate's Project.clean asks for: the sentence encoder's
(a project's text_model) and the hyper-parameters' (its training_params: their ranges and, for
start_from, the version in the database), plus the one that needs the requester (that they manage
start_from's project), which the web layer calls."""

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
            TRAINING_PARAMS_USER_CHECK,
        )
        from annotate.signals import annotations_stored, items_imported
        from training.coldstart import cold_start_receiver
        from training.runs import training_auto_request_receiver

        TEXT_MODEL_CHECKS["encoder"] = _encoder_available
        TRAINING_PARAMS_CHECK[:] = [_training_params_check]
        TRAINING_PARAMS_DESCRIBE[:] = [_training_params_describe]
        TRAINING_PARAMS_USER_CHECK[:] = [_training_params_user_check]
        from django.db.models.signals import post_delete

        from training.models import ModelVersion

        post_delete.connect(_version_files_delete, sender=ModelVersion, dispatch_uid="training_version_files")
        annotations_stored.connect(training_auto_request_receiver, dispatch_uid="training_auto_request")
        items_imported.connect(cold_start_receiver, dispatch_uid="training_cold_start")


def _version_files_delete(sender, instance, **kwargs) -> None:
    """A deleted version's files go once the deletion commits (a rolled-back one keeps them)."""
    from django.db import transaction

    from training.artifact_store import artifact_delete

    prefix = instance.artifact_path
    if prefix:
        transaction.on_commit(lambda: artifact_delete(prefix=prefix))


def _encoder_available() -> str | None:
    """training.backends.encoder.encoder_available, imported when a project asks for it (the web
    process stays light)."""
    from training.backends.encoder import encoder_available

    why = encoder_available()
    return None if why is None else f"the sentence encoder is not available here: {why}"


def _training_params_check(project) -> str | None:
    """training.hyperparams.params_check for the backend that trains `project`; then a start_from's
    version against the database (training.transfer.transfer_source_check)."""
    from training.hyperparams import params_check
    from training.transfer import transfer_source_check
    from training.versions import NoModelForTask, backend_for_project, model_training_check

    try:
        model_training_check(project=project)
        cleaned = params_check(backend_for_project(project), project.training_params)
        if cleaned.get("start_from") is not None:
            transfer_source_check(project=project, version_id=cleaned["start_from"])
    except NoModelForTask as exc:
        return f"{exc}: there are no parameters to set"
    except ValueError as exc:
        return str(exc)
    return None


def _training_params_user_check(project, params, user) -> str | None:
    """training.transfer.transfer_source_user_check: a start_from of a project `user` manages."""
    from training.transfer import transfer_source_user_check

    return transfer_source_user_check(project=project, params=params, user=user)


def _training_params_describe(project) -> str:
    """The parameters a lead may set on `project` (training.hyperparams.params_describe)."""
    from training.hyperparams import params_describe
    from training.versions import NoModelForTask, backend_for_project, model_training_check

    try:
        model_training_check(project=project)
    except NoModelForTask as exc:
        return f"{exc}: there are no parameters to set"
    return f"{backend_for_project(project)}: {params_describe(backend_for_project(project))}"
