"""`manage.py train <project> | --demo`: train, evaluate, score the pool with and activate a version,
in this process (as a training run does, without a worker)."""

from django.core.management.base import BaseCommand, CommandError

from annotate.demo import DIGITS_PROJECT, REVIEWS_PROJECT
from annotate.models import Project
from training.datasets import NotEnoughLabels
from training.evaluation import labels_line
from training.scoring import prediction_pool_score, queue_order_text
from training.versions import (
    NoModelForTask,
    metric_headline,
    model_version_activate,
    model_version_train,
)


class Command(BaseCommand):
    help = "Train, evaluate and activate a model version of each project given (or of both demo projects)."

    def add_arguments(self, parser):
        parser.add_argument("project_ids", nargs="*", type=int, help="Project ids")
        parser.add_argument("--demo", action="store_true", help="Train the two demo projects")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, project_ids, demo, seed, **options):
        projects = list(Project.objects.filter(pk__in=project_ids))
        if demo:
            projects += list(Project.objects.filter(name__in=[DIGITS_PROJECT, REVIEWS_PROJECT]))
        if not projects:
            raise CommandError("name project ids, or --demo")
        failures = 0
        for project in projects:
            self.stdout.write(f"{project.name}: training …")
            try:
                version = model_version_train(project=project, seed=seed, activate=False)
            except (NotEnoughLabels, NoModelForTask) as exc:
                failures += 1
                self.stderr.write(f"{project.name}: {exc}")
                continue
            # As a run does: the queue's order and proposals come from the version before it is active.
            scored = prediction_pool_score(version=version)
            model_version_activate(version=version)
            m = version.metrics
            low, high = m.get("accuracy_ci", [None, None])
            measure, figure = metric_headline(m)
            interval = f" (95% CI {low:.3f}–{high:.3f})" if low is not None else ""
            self.stdout.write(
                f"{project.name}: v{version.number} ({version.backend}) {measure} {figure:.3f}"
                f"{interval}, macro-F1 {m['macro_f1']:.3f}, "
                f"{labels_line(m)}; {scored} items scored, {queue_order_text(m)}; "
                f"seconds: {', '.join(f'{k} {v:.1f}' for k, v in version.timings.items())}"
            )
        if failures:
            raise CommandError(f"{failures} project(s) could not be trained yet")
