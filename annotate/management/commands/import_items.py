"""`manage.py import_items <project_id> <path> [--format …] [--text-column …] [--image-column …]
[--id-column …] [--label-column …] [--prediction-column …] [--source import]`.

The format is inferred from the extension (.csv/.tsv, .json, .jsonl/.ndjson, .txt, .zip, image
extensions); a folder imports every image in it, named by its path inside the folder. In CSV, a
multi-label project's label cell lists names separated by ";".
"""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotate import importing
from annotate.models import Project

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Import items (and any labels and predictions they carry) into a project, all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("path", help="A file, or a folder of images.")
        parser.add_argument(
            "--format", choices=importing.FORMATS, help="Default: inferred from the file's extension."
        )
        parser.add_argument("--text-column", help="Column (CSV) or field (JSON) holding the text.")
        parser.add_argument(
            "--image-column",
            help='Image projects: column or field holding each image\'s http(s) URL (default "image_url").',
        )
        parser.add_argument("--id-column", help="Column or field holding the external id.")
        parser.add_argument(
            "--label-column", help='Column or field with existing labels ("a;b" in a multi-label CSV).'
        )
        parser.add_argument("--prediction-column", help="Column or field with a predicted label.")
        parser.add_argument("--gold-column", help="Column or field with the true value of gold items.")
        parser.add_argument(
            "--import-as",
            choices=("labels", "predictions"),
            help="COCO, YOLO, CoNLL, spaCy: the boxes or spans as labels (default) or predictions.",
        )
        parser.add_argument(
            "--source",
            default="import",
            help="Name of the source imported labels come from (default: import).",
        )

    def handle(self, *args, project_id, path, format, source, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"project {project_id} does not exist")
        path = Path(path)
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        if path.is_dir():
            if format not in (None, "images"):
                raise CommandError(f"{path} is a folder; only --format images imports a folder")
            paths = _folder_files(path)
            if not paths:
                raise CommandError(f"{path} holds no files")
            names = [p.relative_to(path).as_posix() for p in paths]
            format = "images"
        else:
            paths, names = [path], [path.name]
        options = {name: options[name] for name in importing.OPTION_NAMES - {"label_source"}}
        try:
            format, options = importing.import_options_validate(
                format=format, options={**options, "label_source": source}, filenames=names
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        try:
            if format == "images":
                files = [(name, _FileOnDemand(p)) for name, p in zip(names, paths, strict=True)]
                result = importing.import_images(project=project, files=files, progress=self._progress)
            else:
                with path.open("rb") as file:
                    result = importing.item_import(
                        project=project,
                        file=file,
                        filename=path.name,
                        format=format,
                        options=options,
                        progress=self._progress,
                    )
        except importing.ImportRejected as exc:
            self._end_bar()
            raise CommandError(str(exc)) from exc
        self._end_bar()
        summary = f"imported {result.items_created} items ({result.annotations_created} annotations)"
        self.stdout.write(f"{summary} into {project}", style_func=self.style.SUCCESS)

    _bar_shown = False

    def _progress(self, done: int, total: int) -> None:
        """A one-line progress bar on stderr, redrawn in place."""
        fraction = done / total if total else 1.0
        filled = int(BAR_WIDTH * fraction)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stderr.write(f"\r[{bar}] {fraction:4.0%} {done}/{total}", ending="")
        self.stderr.flush()
        self._bar_shown = True

    def _end_bar(self) -> None:
        if self._bar_shown:
            self.stderr.write("")
            self._bar_shown = False


def _folder_files(path: Path) -> list[Path]:
    """The files under `path`, by path, leaving out hidden files and folders."""
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


class _FileOnDemand:
    """Opens its file only when read, so a folder of many images never holds many open files."""

    def __init__(self, path: Path):
        self.path = path

    def read(self, size: int = -1) -> bytes:
        with self.path.open("rb") as file:
            return file.read(size)
