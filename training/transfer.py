"""Transfer learning for images: a project's network started from another project's model version.

A lead sets `start_from` (a ModelVersion id) in the project's training_params (training/hyperparams.py
STUDIO_SPECS: not a backend parameter). It is checked in three places:

- its type, by params_check (pure);
- against the database, by `transfer_source_check` (Project.clean, through training/apps.py, and again
  when a run starts): the version exists, is an image network, is another project's, and read images
  of the side this project trains with;
- against the requester, by `transfer_source_user_check` (the settings page, the API and the admin,
  through annotate's TRAINING_PARAMS_USER_CHECK; Project.clean has no user): they manage the
  version's project. A version of a project they do not manage reads exactly like one that does not
  exist, so the message tells nothing of other projects.

model_version_train loads the version's weights once (`transfer_source_load`) and builds every
backend of the run through `TransferSource.builder`, so the k-fold fits, the random-sampling curve's
fits and the final fit all start from them (training/backends/image.py start_from: every tensor but
the head). The version records the source in metrics["transfer"].
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotate.models import Project
from annotate.projects import project_list_managed_by
from training.models import ModelVersion

IMAGE_BACKEND = "image_cnn"


def _default_input_size() -> int:
    from training.backends.image import ImageCNNBackend  # light: torch is imported inside its methods

    return int(ImageCNNBackend.default_params["input_size"])


def transfer_source_check(
    *, project: Project, version_id: int, input_size: int | None = None
) -> ModelVersion:
    """The version `project` may start its network from; ValueError, starting "start_from:", when
    there is none of that id, it is not an image network, it is the project's own, or it read images
    of another side than `input_size` (default: the project's training_params input_size, else the
    network's default)."""
    version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None:
        raise ValueError(f"start_from: no model version {version_id}")
    name = f"v{version.number} of {version.project.name}"
    if version.backend != IMAGE_BACKEND:
        raise ValueError(
            f"start_from: model version {version_id} ({name}) is a {version.backend} model, not an image"
            f" network ({IMAGE_BACKEND})"
        )
    if version.project_id == project.pk:
        raise ValueError(
            f"start_from: model version {version_id} is this project's own ({name}); start from another"
            " project's"
        )
    if input_size is None:
        input_size = (project.training_params or {}).get("input_size") or _default_input_size()
    theirs = int((version.params or {}).get("input_size") or _default_input_size())
    if theirs != int(input_size):
        raise ValueError(
            f"start_from: {name} read {theirs}-pixel images and this project trains on {int(input_size)};"
            f" set input_size to {theirs} or start from another version"
        )
    return version


def transfer_source_user_check(*, project: Project | None, params: Any, user) -> str | None:
    """Why `user` may not set these training_params' start_from on `project` (the stored row, or
    None for a new project), or None: they manage the version's project (a superuser manages all).

    Only a start_from that changes is checked, so a co-manager may save other settings of a project
    that starts from a version of a project they do not manage. A start_from of the wrong type is
    left to params_check, which names it.
    """
    version_id = params.get("start_from") if isinstance(params, dict) else None
    if version_id is None or isinstance(version_id, bool) or not isinstance(version_id, int):
        return None
    stored = (project.training_params or {}) if project is not None and project.pk is not None else {}
    if stored.get("start_from") == version_id:
        return None
    if user is None or not user.is_authenticated:
        managed = Project.objects.none()
    else:
        managed = project_list_managed_by(user=user)
    if not ModelVersion.objects.filter(pk=version_id, project__in=managed.values("pk")).exists():
        return f"start_from: no model version {version_id} among the projects you manage"
    return None


@dataclass(frozen=True)
class TransferSource:
    """A version's fitted network, loaded to start another project's fits from."""

    version_id: int
    project_id: int
    project: str
    number: int
    weights: dict[str, np.ndarray]
    input_shape: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"v{self.number} of {self.project}"

    def summary(self) -> dict:
        """What the new version records of its source (metrics["transfer"])."""
        return {
            "version_id": self.version_id,
            "project_id": self.project_id,
            "project": self.project,
            "number": self.number,
        }

    def builder(self, backend_class) -> Callable[..., Any]:
        """`backend_class`, but each backend it makes starts from this source's weights."""

        def build(**params):
            return backend_class(**params).start_from(
                self.weights, source=self.label, input_shape=self.input_shape
            )

        return build


def transfer_source_load(
    *, project: Project, version_id: int, backend_name: str, params: dict
) -> TransferSource:
    """The version's network for a run of `project` with the backend `backend_name` and `params`
    (its hyper-parameters); ValueError "start_from: ..." when the version does not check, now."""
    from training.versions import model_version_backend

    if backend_name != IMAGE_BACKEND:
        raise ValueError(f"start_from: only the image network ({IMAGE_BACKEND}) starts from another's")
    version = transfer_source_check(
        project=project, version_id=version_id, input_size=params.get("input_size") or _default_input_size()
    )
    backend = model_version_backend(version)
    return TransferSource(
        version_id=version.pk,
        project_id=version.project_id,
        project=version.project.name,
        number=version.number,
        weights=backend.weights(),
        input_shape=tuple(backend.input_shape),
    )
