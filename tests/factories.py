"""factory_boy factories. SubFactory chains stay in one project: an item's assignment and
annotation belong to the item's project."""

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotate.models import Annotation, Assignment, Item, Label, Membership, Project, Skip

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    task_type = Project.TaskType.TEXT_CLASSIFICATION
    random_share = 0.0  # no random-slice draws unless a test asks (see make_project)
    overlap = 1
    lease_seconds = 600


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"label{n}")
    order = factory.Sequence(lambda n: n)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ANNOTATOR


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"item-{n}")
    text = factory.Faker("sentence")


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    item = factory.SubFactory(ItemFactory)
    project = factory.SelfAttribute("item.project")
    annotator = factory.SubFactory(UserFactory)
    status = Assignment.Status.OPEN
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda a: a.created_at + timedelta(minutes=10))


class AnnotationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Annotation

    item = factory.SubFactory(ItemFactory)
    project = factory.SelfAttribute("item.project")
    annotator = factory.SubFactory(UserFactory)
    value = factory.LazyFunction(lambda: {"choices": []})
    created_at = factory.LazyFunction(timezone.now)


class SkipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Skip

    item = factory.SubFactory(ItemFactory)
    project = factory.SelfAttribute("item.project")
    annotator = factory.SubFactory(UserFactory)
    created_at = factory.LazyFunction(timezone.now)


def make_project(*, labels=("positive", "negative"), items=0, members=(), **fields) -> Project:
    """A project built through the real service, with labels, `items` text items and members.

    `members` is a sequence of (user, role). The creator is a fresh manager.
    """
    from annotate.items import item_create_bulk
    from annotate.projects import membership_add, project_create

    fields.setdefault("name", f"Project {Project.objects.count() + 1}")
    fields.setdefault("task_type", Project.TaskType.TEXT_CLASSIFICATION)
    # No random-slice draws unless a test asks for them (tests/annotate/test_random_slice.py): a
    # draw at the studio's 10% would make every "the queue serves …" assertion flaky.
    fields.setdefault("random_share", 0.0)
    project = project_create(created_by=UserFactory(), labels=list(labels), **fields)
    if items:
        item_create_bulk(
            project=project,
            rows=[{"external_id": f"t{i}", "text": f"text number {i}"} for i in range(items)],
        )
    for user, role in members:
        membership_add(project=project, user=user, role=role)
    return project
