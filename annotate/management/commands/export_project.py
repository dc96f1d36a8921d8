"""`manage.py export_project <project_id> --format json|jsonl|csv [--labeled-only] [--output PATH|-]`."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate import exporting
from annotate.management.files import file_replaced_whole
from annotate.models import Project


class Command(BaseCommand):
    help = "Export a project's items, annotations and final labels as JSON, JSON Lines or CSV."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("--format", choices=exporting.FORMATS, default="jsonl")
        parser.add_argument(
            "--labeled-only", action="store_true", help="Only items with at least one annotation."
        )
        parser.add_argument(
            "--output",
            default="-",
            help="File to write (replaced whole once complete), or - for standard output (the default).",
        )

    def handle(self, *args, project_id, format, labeled_only, output, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"project {project_id} does not exist")
        written = 0

        def track(done: int, total: int) -> None:
            nonlocal written
            written = done

        chunks = exporting.export_stream(
            project=project, format=format, labeled_only=labeled_only, progress=track
        )
        if output == "-":
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
        else:
            self._write_file(Path(output), chunks)
        # On stderr, so that `--output -` stays a clean export.
        summary = f"Exported {written} items of project {project.pk} as {format}"
        self.stderr.write(summary + ("" if output == "-" else f" to {output}"), style_func=self.style.SUCCESS)

    def _write_file(self, path: Path, chunks) -> None:
        try:
            with file_replaced_whole(path) as out:
                for chunk in chunks:
                    out.write(chunk.encode("utf-8"))
        except BaseException:
            chunks.close()
            raise
