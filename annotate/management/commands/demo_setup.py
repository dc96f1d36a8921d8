from django.core.management.base import BaseCommand

from annotate.demo import demo_setup


class Command(BaseCommand):
    help = "Create the demo accounts and the two demo projects (digits, Rotten Tomatoes); reuses what exists."

    def handle(self, *args, **options):
        demo_setup(stdout=self.stdout)
