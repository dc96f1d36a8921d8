"""`manage.py demo_setup`: the demo accounts and projects (annotate/demo.py); bin/run calls it."""

from django.core.management.base import BaseCommand, CommandError

from annotate.demo import DemoDataUnavailable, demo_setup


class Command(BaseCommand):
    help = (
        "Create the demo accounts and the demo projects (digits, Rotten Tomatoes, digit boxes, names);"
        " reuses what exists."
    )

    def handle(self, *args, **options):
        try:
            demo_setup(stdout=self.stdout)
        except DemoDataUnavailable as exc:
            raise CommandError(str(exc)) from exc
