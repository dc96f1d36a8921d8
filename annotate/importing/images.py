"""Images (image classification projects): image files or a zip, with image and zip safety.

Pillow decides what is an image, whatever the name, among common raster formats only (no EPS,
which runs Ghostscript); a decompression bomb, an image over LABELLOOP_MAX_IMAGE_PIXELS or a file
over MAX_IMAGE_FILE_BYTES is refused by name. EXIF orientation is applied before storing; web
formats are kept as uploaded, others stored as PNG. A zip with an unsafe path (absolute, or with
".." parts) is refused before anything is read; its folders, "__MACOSX/" and dotfiles are
ignored. The external id is the name as given (the path inside the zip). Files written are
deleted again when the import is refused.

An image project's CSV, JSON or JSONL names its images by http(s) URL (`url_rows_import`): the
project must fetch image URLs (Project.fetch_image_urls), remote.py fetches each within its
limits, and the bytes pass the same checks as an uploaded image.
"""

import io
import logging
import re
import secrets
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import IO
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError

from annotate.importing import remote, writer
from annotate.importing.rows import (
    ImportRejected,
    ImportResult,
    Row,
    external_id_check,
    ids_check,
    task_type_require,
)
from annotate.models import Project

logger = logging.getLogger(__name__)

PROGRESS_EVERY_IMAGE = 50
PROGRESS_EVERY_URL = 10
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# A zip entry or uploaded image larger than this is refused before it is read whole.
MAX_IMAGE_FILE_BYTES = 200 * 1024 * 1024

# Kept as uploaded; anything else Pillow reads (TIFF, PPM, …) is stored as PNG so browsers show it.
_WEB_FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "MPO": (".jpg", ".jpeg"),  # cameras' multi-picture JPEG; browsers show the first picture
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "AVIF": (".avif",),
}
_OPEN_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"^[A-Za-z]:")


def import_images(
    *, project: Project, files: Sequence[tuple[str, IO]], progress: writer.Progress | None = None
) -> ImportResult:
    """Import image files given as (name, binary file) pairs; the name is the external id; all or nothing."""
    task_type_require(project, Project.TaskType.IMAGE_CLASSIFICATION, "images")
    named = []
    for name, file in files:
        where = f"file {name!r}"
        if not name or _path_unsafe(name):
            raise ImportRejected(f"{where}: unsafe name (absolute or with '..' parts); nothing was imported")
        named.append((where, name, file))
    ids_check(
        project=project,
        filename=None,
        id_field=None,
        ids=[(w, n) for w, n, _ in named],
        batch_size=writer.BATCH_SIZE,
    )

    def read(file: IO, where: str) -> bytes:
        data = file.read(MAX_IMAGE_FILE_BYTES + 1)
        if len(data) > MAX_IMAGE_FILE_BYTES:
            raise ImportRejected(f"{where}: larger than {MAX_IMAGE_FILE_BYTES // 2**20} MB")
        return data

    return _images_import(
        project=project,
        filename="the images",
        entries=[(where, name, lambda f=file, w=where: read(f, w)) for where, name, file in named],
        progress=progress,
    )


def import_image_zip(
    *, project: Project, file: IO, filename: str, progress: writer.Progress | None = None
) -> ImportResult:
    """Import the images in a zip; the path inside the zip is the external id; all or nothing.

    Unsafe paths (absolute, or with ".." parts) refuse the zip before anything is read;
    directories, "__MACOSX/" and dotfiles are ignored; any other entry must be an image.
    """
    task_type_require(project, Project.TaskType.IMAGE_CLASSIFICATION, "zip")
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportRejected(f"{filename}: not a zip file") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            if _path_unsafe(info.filename):
                raise ImportRejected(
                    f"{filename}, entry {info.filename!r}: unsafe path (absolute or with '..' parts);"
                    " nothing was imported"
                )
        entries = []
        for info in infos:
            if info.is_dir() or _zip_entry_ignored(info.filename):
                continue
            where = f"{filename}, entry {info.filename!r}"
            entries.append((where, info.filename, lambda i=info, w=where: _zip_read(archive, i, w)))
        if not entries:
            raise ImportRejected(f"{filename}: the zip holds no files")
        ids_check(
            project=project,
            filename=None,
            id_field=None,
            ids=[(w, n) for w, n, _ in entries],
            batch_size=writer.BATCH_SIZE,
        )
        return _images_import(project=project, filename=filename, entries=entries, progress=progress)


def images_zip(files: Sequence[tuple[str, IO]], *, into: IO) -> None:
    """Pack (name, binary file) pairs into one zip written to `into`, rewound."""
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, file in files:
            with archive.open(name, "w") as entry:
                while chunk := file.read(1 << 20):
                    entry.write(chunk)
    into.seek(0)


def _images_import(
    *,
    project: Project,
    filename: str,
    entries: Sequence[tuple[str, str, Callable[[], bytes]]],
    progress: writer.Progress | None,
) -> ImportResult:
    """Decode, rotate and store each image, then write the items; files written are deleted on failure.

    `entries` holds (where, external id, read the bytes); the ids were checked already.
    """
    for where, external_id, _ in entries:
        external_id_check(external_id, where=where, field=None)
    max_pixels = int(getattr(settings, "LABELLOOP_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))
    reporter = writer.ProgressReporter(progress, len(entries), every=PROGRESS_EVERY_IMAGE)
    written: list[str] = []
    try:
        rows = []
        for done, (where, external_id, read) in enumerate(entries, start=1):
            data, extension, width, height = image_prepare(read(), where=where, max_pixels=max_pixels)
            stored = _image_store(project, external_id, data, extension)
            written.append(stored)
            rows.append(Row(locator=where, external_id=external_id, image=stored, width=width, height=height))
            reporter.step(done)
        result = writer.rows_write(project=project, rows=rows, source=None, filename=filename)
    except BaseException:
        _files_delete(written)
        raise
    reporter.finish(result.items_created)
    return result


def url_fetcher() -> remote.UrlFetcher:
    """The fetcher imports use: the system resolver, public addresses only, the settings' limits."""
    return remote.UrlFetcher(
        max_bytes=int(getattr(settings, "LABELLOOP_URL_FETCH_MAX_BYTES", remote.DEFAULT_MAX_BYTES)),
        time_limit=float(getattr(settings, "LABELLOOP_URL_FETCH_TIMEOUT", remote.DEFAULT_TIME_LIMIT)),
    )


def url_rows_import(
    *,
    project: Project,
    filename: str,
    rows: Callable[[], Iterator[Row]],
    image_field: str,
    id_field: str | None,
    source: str | None,
    progress: writer.Progress | None,
) -> ImportResult:
    """Fetch each row's image (Row.image_url; an image project's CSV, JSON or JSONL), check and
    store it as an uploaded image is, then write the rows; all or nothing.

    Every row is validated and the ids checked before the first fetch; a refused fetch names the
    row, the field and the URL; the files written are deleted whenever the import is refused.
    Nothing is fetched in a transaction: the rows are written once every image is stored.
    """
    task_type_require(project, Project.TaskType.IMAGE_CLASSIFICATION, "images by URL")
    parsed = list(rows())
    if not parsed:
        raise ImportRejected(f"{filename}: no items in the file")
    ids_check(
        project=project,
        filename=filename,
        id_field=id_field,
        ids=[(f"{filename}, {row.locator}", row.external_id) for row in parsed],
        batch_size=writer.BATCH_SIZE,
    )
    fetcher = url_fetcher()
    max_pixels = int(getattr(settings, "LABELLOOP_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))
    reporter = writer.ProgressReporter(progress, len(parsed), every=PROGRESS_EVERY_URL)
    written: list[str] = []
    try:
        fetched = []
        for done, row in enumerate(parsed, start=1):
            where = f"{filename}, {row.locator}, field {image_field!r}"
            try:
                body = fetcher.fetch(row.image_url)
            except remote.UrlFetchRefused as exc:
                # A redirect's target is refused by its own URL: name the row's too.
                via = "" if exc.url == row.image_url else f"{row.image_url[:200]} redirected to "
                raise ImportRejected(f"{where}: {via}{exc}; nothing was imported") from None
            data, extension, width, height = image_prepare(
                body, where=f"{where} ({row.image_url[:200]})", max_pixels=max_pixels
            )
            stored = _image_store(project, urlsplit(row.image_url).path, data, extension)
            written.append(stored)
            fetched.append(row._replace(image=stored, width=width, height=height, image_url=""))
            reporter.step(done)
        result = writer.rows_import(
            project=project,
            filename=filename,
            rows=lambda: iter(fetched),
            total=len(fetched),
            id_field=id_field,
            source=source,
            progress=None,
        )
    except BaseException:
        _files_delete(written)
        raise
    reporter.finish(result.items_created)
    return result


def _image_store(project: Project, path: str, data: bytes, extension: str) -> str:
    """Store an image's bytes under the project's folder, named after the last part of `path`."""
    stem = PurePosixPath(path.replace("\\", "/")).name
    stem = stem[: -len(PurePosixPath(stem).suffix)] if PurePosixPath(stem).suffix else stem
    name = default_storage.get_valid_name(f"{secrets.token_hex(8)}-{stem[:100]}{extension}")
    return default_storage.save(f"projects/{project.id}/{name}", ContentFile(data))


def _files_delete(written: Sequence[str]) -> None:
    for stored in written:
        try:
            default_storage.delete(stored)
        except OSError:
            logger.warning("could not delete %s after a rejected import", stored, exc_info=True)


def image_prepare(data: bytes, *, where: str, max_pixels: int) -> tuple[bytes, str, int, int]:
    """(bytes to store, extension, width, height) of an image, upright; refuses what Pillow cannot read."""
    formats = _open_formats()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data), formats=formats) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImportRejected(
                    f"{where}: {width}x{height} is {width * height:,} pixels,"
                    f" over the limit of {max_pixels:,}"
                )
            image.load()
            source_format = image.format
            orientation = image.getexif().get(274, 1)
            upright_already = orientation in (None, 0, 1)
            if source_format in _WEB_FORMAT_EXTENSIONS and upright_already:
                return data, _WEB_FORMAT_EXTENSIONS[source_format][0], width, height
            upright = image if upright_already else ImageOps.exif_transpose(image)
            out = io.BytesIO()
            if source_format in ("JPEG", "MPO"):
                if upright.mode not in ("RGB", "L", "CMYK"):
                    upright = upright.convert("RGB")
                upright.save(out, format="JPEG", quality=95, icc_profile=image.info.get("icc_profile"))
                extension = ".jpg"
            else:
                if upright.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
                    has_alpha = "A" in upright.getbands()
                    upright = upright.convert("RGBA" if has_alpha else "RGB")
                upright.save(out, format="PNG", icc_profile=image.info.get("icc_profile"))
                extension = ".png"
            return out.getvalue(), extension, upright.width, upright.height
    except ImportRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImportRejected(f"{where}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImportRejected(f"{where}: not an image ({', '.join(formats)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImportRejected(f"{where}: a broken image ({exc})") from None


def _open_formats() -> list[str]:
    """The formats Pillow may open: common raster formats only (no EPS, which runs Ghostscript)."""
    Image.init()
    return [name for name in _OPEN_FORMATS if name in Image.OPEN]


def _path_unsafe(name: str) -> bool:
    path = name.replace("\\", "/")
    return path.startswith("/") or bool(_DRIVE.match(path)) or ".." in path.split("/")


def _zip_entry_ignored(name: str) -> bool:
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    return (
        not parts
        or parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in parts)
        or parts[-1].lower() in _IGNORED_NAMES
    )


def _zip_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    if info.file_size > MAX_IMAGE_FILE_BYTES:
        raise ImportRejected(f"{where}: larger than {MAX_IMAGE_FILE_BYTES // 2**20} MB")
    try:
        with archive.open(info) as entry:
            data = entry.read(MAX_IMAGE_FILE_BYTES + 1)
    except RuntimeError:
        raise ImportRejected(f"{where}: the entry is encrypted") from None
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ImportRejected(f"{where}: cannot be read from the zip ({exc})") from None
    if len(data) > MAX_IMAGE_FILE_BYTES:
        raise ImportRejected(f"{where}: larger than {MAX_IMAGE_FILE_BYTES // 2**20} MB")
    return data
