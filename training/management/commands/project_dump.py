"""`manage.py project_dump PROJECT_ID OUT.zip`: a whole project as one zip (training/project_dump.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.management.files import file_replaced_whole
from annotate.models import Project
from training.project_dump import ProjectDumpError, project_dump


class Command(BaseCommand):
    help = "Dump a project whole (rows, files, model versions) into a zip that project_restore reads."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("output", help="The zip to write (replaced whole once complete).")

    def handle(self, *args, project_id, output, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"project {project_id} does not exist")
        path = Path(output)
        try:
            with file_replaced_whole(path) as out:
                manifest = project_dump(project=project, into=out)
        except ProjectDumpError as exc:
            raise CommandError(str(exc)) from None
        counts = manifest["counts"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Dumped project {project.pk} to {path}: {counts['items.jsonl']} items,"
                f" {counts['annotations.jsonl']} annotations,"
                f" {counts['model_versions.jsonl']} model versions,"
                f" {sum(1 for m in manifest['members'] if m.startswith('files/'))} files"
            )
        )
