"""Recompute a project's final labels, agreement and dashboard tallies from its annotations (a repair)."""

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Annotation, Item, Label, Project, Review, Tally
from annotate.quality.rebuild import project_quality_rebuild


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)

    def handle(self, *args, project_id, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"project {project_id} does not exist")
        models = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}
        written = project_quality_rebuild(project=project, models=models)
        self.stdout.write(f"project {project_id}: {written} items rewritten")
