"""`manage.py project_restore IN.zip [--owner USERNAME] [--name NAME]`: a dump read into a new
project (training/project_dump.py)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from training.project_dump import ProjectDumpError, project_restore


class Command(BaseCommand):
    help = "Restore a project_dump zip as a new project (new ids; users matched by username)."

    def add_arguments(self, parser):
        parser.add_argument("input", help="The zip project_dump wrote.")
        parser.add_argument("--owner", help="Username who becomes the project's creator and a manager.")
        parser.add_argument("--name", help="A new name for the restored project.")

    def handle(self, *args, input, owner, name, **options):
        user = None
        if owner:
            User = get_user_model()
            user = User.objects.filter(**{User.USERNAME_FIELD: owner}).first()
            if user is None:
                raise CommandError(f"no user {owner!r}")
        try:
            with open(input, "rb") as source:
                project = project_restore(source=source, owner=user, name=name)
        except FileNotFoundError:
            raise CommandError(f"no file {input}") from None
        except ProjectDumpError as exc:
            raise CommandError(f"{input}: {exc}; nothing was restored") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored project {project.pk} ({project.name}) from {input};"
                f" {project.restore_users_created} users created inactive"
            )
        )
