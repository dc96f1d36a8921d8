"""Predictions for new inputs (texts, or uploaded images) from a project's model version: the
services behind POST /api/projects/<id>/predict/ (training/api/predict.py).

The web process checks the request (prediction_body_check, prediction_version,
prediction_texts_check, prediction_images_check), then predictions_request stores uploaded
images in Django's storage under a fresh prefix, dispatches `tasks.predictions_compute` to the
`predict` queue and waits for its result. The model never runs in a web process: the predict
worker's task calls predictions_compute, which loads the version's backend once per process
(versions.model_version_backend, so it stays warm across requests), reads and deletes the
images, and makes the predictions with training/backends/inputs.py, the path a downloaded model's
loader shares, so the endpoint and a download agree.

Nothing is written to the database; a refused request leaves no file behind either: every input
is checked before the first image is stored, and the stored images are deleted by the worker
once read, or by the web process when no answer came.
"""

import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotate.importing.images import image_prepare
from annotate.importing.rows import ImportRejected, json_type
from annotate.models import Project
from training.backends.inputs import IMAGE_BACKEND
from training.models import ModelVersion
from training.versions import model_version_active, model_version_backend, model_version_list

logger = logging.getLogger(__name__)

# The longest text a request may send, in characters (code points); the body's byte cap
# (LABELLOOP_PREDICT_MAX_BYTES) bounds the batch as a whole.
MAX_TEXT_CHARS = 100_000
# Uploaded images live in this folder, under a fresh random prefix per request, until the worker
# has read them.
UPLOAD_PREFIX = "predict"
# How often the web process looks for the result on the filesystem result backend (on Redis the
# answer is pushed, and this is only how often the wait loop turns).
RESULT_POLL_SECONDS = 0.005
_SHOWN_NAME_CHARS = 80


class BodyTooLarge(Exception):
    """The request's body is over LABELLOOP_PREDICT_MAX_BYTES (413); the message gives both sizes."""


class NoModelVersion(Exception):
    """The project has no active model version to predict with (409); the message says what to do."""


class PredictionUnavailable(Exception):
    """No predict worker answered in time, or the broker or result backend is unreachable (503)."""


class PredictionFailed(Exception):
    """The predict worker raised while predicting (502); the message names the error."""


# Checks (web process) -------------------------------------------------------------------


def prediction_limits() -> tuple[int, int]:
    """(the most items a request, the most bytes of body) from the settings."""
    return int(settings.LABELLOOP_PREDICT_MAX_ITEMS), int(settings.LABELLOOP_PREDICT_MAX_BYTES)


def prediction_body_check(*, content_length: int) -> None:
    """Raise BodyTooLarge when a body of `content_length` bytes is over the cap; call it before
    anything reads the body (the WSGI stream never yields more than Content-Length)."""
    _, max_bytes = prediction_limits()
    if content_length > max_bytes:
        raise BodyTooLarge(
            f"the body is {content_length:,} bytes, over the limit of {max_bytes:,}"
            f" (LABELLOOP_PREDICT_MAX_BYTES); send fewer or smaller items a request"
        )


def prediction_version(*, project: Project, number: str | None) -> ModelVersion:
    """The version to predict with: `number` (the N of vN, as given in ?version=) of this project,
    else its active one. ValidationError on "version" for a number this project has no version
    of; NoModelVersion when it has no active version."""
    if number is None or number == "":
        version = model_version_active(project=project)
        if version is None:
            raise NoModelVersion(
                "this project has no active model version yet: train one first"
                f" (POST /api/projects/{project.pk}/training-runs/)"
            )
        return version
    try:
        wanted = int(number)
    except ValueError:
        raise ValidationError({"version": [f"version: {number[:20]!r} is not a version number"]}) from None
    version = model_version_list(project=project).filter(number=wanted).first()
    if version is None:
        numbers = list(model_version_list(project=project).values_list("number", flat=True)[:20])
        known = ", ".join(str(n) for n in sorted(numbers)) or "none yet"
        raise ValidationError(
            {"version": [f"version: this project has no version {wanted} (its versions: {known})"]}
        )
    return version


def prediction_reads_images(version: ModelVersion) -> bool:
    """Whether `version` predicts from images (else from texts)."""
    return version.backend == IMAGE_BACKEND


def prediction_texts_check(data: Any) -> list[str]:
    """The texts of a JSON body {"texts": [...]}: 1 to LABELLOOP_PREDICT_MAX_ITEMS non-empty strings
    of at most MAX_TEXT_CHARS characters, without NUL. ValidationError on "texts" naming the index
    otherwise. The texts go to the model as sent."""
    max_items, _ = prediction_limits()
    if not isinstance(data, dict):
        raise ValidationError(f'the body must be a JSON object {{"texts": [...]}}, not {json_type(data)}')
    if "texts" not in data:
        raise ValidationError({"texts": [f"texts: required, a list of 1 to {max_items} strings"]})
    texts = data["texts"]
    if not isinstance(texts, list):
        raise ValidationError({"texts": [f"texts: a list of strings expected, not {json_type(texts)}"]})
    if not texts:
        raise ValidationError({"texts": [f"texts: the batch is empty; send 1 to {max_items} texts"]})
    if len(texts) > max_items:
        raise ValidationError(
            {"texts": [f"texts: {len(texts):,} texts, over the limit of {max_items} a request"]}
        )
    for index, text in enumerate(texts):
        problem = _text_problem(text)
        if problem:
            raise ValidationError({"texts": [f"texts[{index}]: {problem}"]})
    return texts


def _text_problem(text: Any) -> str | None:
    if not isinstance(text, str):
        return f"a string expected, not {json_type(text)}"
    if len(text) > MAX_TEXT_CHARS:
        return f"{len(text):,} characters, over the limit of {MAX_TEXT_CHARS:,}"
    if not text.strip():
        return "the text is empty"
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON's "\ud800": a lone surrogate, no character at all
        return f"not valid Unicode (a lone surrogate at character {exc.start})"
    return None


def prediction_images_check(files: Sequence) -> list[tuple[bytes, str]]:
    """The uploaded files as (bytes to store, extension), through the import's image checks
    (annotate/importing/images.py: Pillow decides what is an image, common raster formats only,
    decompression bombs and images over LABELLOOP_MAX_IMAGE_PIXELS refused, EXIF orientation
    applied), so the model reads an upload exactly as it reads an imported item's file.
    ValidationError on "images" naming the index and the file's name."""
    max_items, _ = prediction_limits()
    if not files:
        raise ValidationError(
            {"images": [f"images: no files; send 1 to {max_items} images as multipart files named 'images'"]}
        )
    if len(files) > max_items:
        raise ValidationError(
            {"images": [f"images: {len(files):,} files, over the limit of {max_items} a request"]}
        )
    max_pixels = int(settings.LABELLOOP_MAX_IMAGE_PIXELS)
    prepared = []
    for index, file in enumerate(files):
        name = str(getattr(file, "name", "") or "unnamed")
        shown = name if len(name) <= _SHOWN_NAME_CHARS else name[: _SHOWN_NAME_CHARS - 1] + "…"
        where = f"images[{index}] ({shown})"
        try:
            data, extension, _, _ = image_prepare(file.read(), where=where, max_pixels=max_pixels)
        except ImportRejected as exc:
            raise ValidationError({"images": exc.messages}) from None
        prepared.append((data, extension))
    return prepared


# Dispatch and wait (web process) --------------------------------------------------------


def predictions_request(
    *, version: ModelVersion, texts: list[str] | None = None, images: list[tuple[bytes, str]] | None = None
) -> dict:
    """{"version", "backend", "predictions"} for checked `texts` or `images` (one of them), in
    input order, computed by a predict worker: images are stored for it first.

    Waits LABELLOOP_PREDICT_TIMEOUT seconds at most: PredictionUnavailable when no worker answered
    (or the broker is unreachable), PredictionFailed when the worker raised. Writes no row, so it
    dispatches at once (no transaction to wait for).
    """
    from celery.exceptions import TimeoutError as CeleryTimeout
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    from training import tasks

    timeout = float(settings.LABELLOOP_PREDICT_TIMEOUT)
    names = _images_store(images) if images is not None else None
    result, answered = None, False
    started = time.perf_counter()
    try:
        try:
            # Expires with the wait: a worker that starts later drops it instead of predicting
            # for nobody from images already deleted.
            result = tasks.predictions_compute.apply_async(
                kwargs={
                    "version_id": version.pk,
                    "artifact_path": version.artifact_path,
                    "texts": texts,
                    "image_names": names,
                },
                expires=timeout,
            )
        except (OperationalError, RedisError, OSError) as exc:
            raise PredictionUnavailable(
                f"the task broker is unreachable ({type(exc).__name__}: {exc})"
            ) from None
        try:
            predictions = result.get(timeout=timeout, interval=RESULT_POLL_SECONDS)
        except CeleryTimeout:
            raise PredictionUnavailable(
                f"no predict worker answered within {timeout:g} s: is a worker consuming the 'predict'"
                " queue running? (bin/run starts one; in production, see the README's Production section)"
            ) from None
        except (OperationalError, RedisError) as exc:
            raise PredictionUnavailable(
                f"the result backend is unreachable ({type(exc).__name__}: {exc})"
            ) from None
        except Exception as exc:  # raised in the worker, and raised again here by Celery
            logger.warning("predictions for version %s failed in the worker: %r", version.pk, exc)
            raise PredictionFailed(f"the predict worker failed: {type(exc).__name__}: {exc}") from None
        answered = True
    finally:
        if result is not None:
            _result_forget(result)
        if names and not answered:
            _images_delete(names)
    logger.info(
        "predictions: version %s, %s inputs in %.1f ms",
        version.pk,
        len(predictions),
        (time.perf_counter() - started) * 1000,
    )
    return {"version": version.number, "backend": version.backend, "predictions": predictions}


def _images_store(images: list[tuple[bytes, str]]) -> list[str]:
    """Save the images under a fresh prefix; their storage names, in order (none left on failure)."""
    # One folder for all requests, each request's files under a fresh name: a folder per request
    # would be left behind empty on a filesystem storage once the worker deleted its files.
    prefix = f"{UPLOAD_PREFIX}/{secrets.token_hex(16)}"
    stored: list[str] = []
    try:
        for index, (data, extension) in enumerate(images):
            stored.append(default_storage.save(f"{prefix}-{index}{extension}", ContentFile(data)))
    except BaseException:
        _images_delete(stored)
        raise
    return stored


def _images_delete(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not delete the uploaded image %s", name, exc_info=True)


def _result_forget(result) -> None:
    # The result was read (or never will be): drop it from the backend rather than leave it to expire.
    try:
        result.forget()
    except Exception:
        logger.warning("could not forget the result of task %s", result.id, exc_info=True)


# The worker's side ----------------------------------------------------------------------


def predictions_compute(
    *,
    version_id: int,
    artifact_path: str,
    texts: list[str] | None = None,
    image_names: list[str] | None = None,
) -> list[dict]:
    """One prediction per input of version `version_id`, whose files are at `artifact_path`
    (training/backends/inputs.py's dicts), for `texts` or the stored images `image_names` (read,
    then deleted). Runs in the predict worker; the backend is loaded once per process, and no
    query is made (see tasks.predictions_compute)."""
    from PIL import Image

    from training.backends import inputs

    started = time.perf_counter()
    # An unsaved instance carrying the two fields model_version_backend reads (its cache key).
    backend = model_version_backend(ModelVersion(pk=version_id, artifact_path=artifact_path))
    loaded = time.perf_counter()
    if image_names is not None:
        pictures = []
        try:
            # Read as the features cache reads an item's file (training/features.py image_arrays).
            for name in image_names:
                with default_storage.open(name, "rb") as file, Image.open(file) as picture:
                    picture.load()
                    pictures.append(picture)
        finally:
            _images_delete(image_names)
        model_inputs = inputs.inputs_from_images(backend, pictures)
    else:
        model_inputs = inputs.inputs_from_texts(backend, texts or [])
    prepared = time.perf_counter()
    answers = inputs.predictions(backend, model_inputs)
    logger.info(
        "predictions: version %s, %s inputs: load %.1f ms, inputs %.1f ms, model %.1f ms",
        version_id,
        len(answers),
        (loaded - started) * 1000,
        (prepared - loaded) * 1000,
        (time.perf_counter() - prepared) * 1000,
    )
    return answers
