"""Every project page and GET endpoint answers a lead of a box or span project, with labels,
disagreeing annotators, a review and a gold item in it, without a server error.

The routes come from the URL resolver (tests/annotate/test_roles.py), so a page added later is
walked too."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.gold import item_gold_set
from annotate.models import ExportJob, ImportJob, Item, Membership, Project
from annotate.projects import label_create
from annotate.queue import annotation_submit, assignment_next
from annotate.review import review_decide
from tests.annotate.test_roles import PNG, project_routes, version_with_files
from tests.factories import UserFactory, make_project
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

TEXT = "Ana Lima joined Acme in Porto 👍🏽 last year."


def _values(task_type: str) -> tuple[dict, dict]:
    if task_type == Project.TaskType.IMAGE_BOXES:
        box = {"x": 0.1, "y": 0.1, "w": 0.5, "h": 0.5, "label": "PER"}
        return {"boxes": [box]}, {"boxes": [box, {**box, "x": 0.6, "w": 0.3, "label": "ORG"}]}
    ana = {"start": 0, "end": 8, "label": "PER"}
    return {"spans": [ana]}, {"spans": [ana, {"start": 16, "end": 20, "label": "ORG"}]}


@pytest.fixture(params=[Project.TaskType.IMAGE_BOXES, Project.TaskType.TEXT_SPANS])
def world(request):
    task_type = request.param
    lead, a, b = UserFactory(), UserFactory(), UserFactory()
    project = make_project(
        labels=["PER", "ORG"],
        task_type=task_type,
        overlap=2,
        members=[(lead, "manager"), (a, "annotator"), (b, "annotator")],
    )
    image = task_type == Project.TaskType.IMAGE_BOXES
    items = []
    for n in range(3):
        item = Item(project=project, external_id=f"i{n}", text="" if image else TEXT)
        if image:
            item.image.save(f"i{n}.png", ContentFile(PNG), save=False)
            item.width = item.height = 1
        item.save()
        items.append(item)
    one, two = _values(task_type)
    for user, value in ((a, one), (b, two)):
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value)
    reviewed = Item.objects.filter(project=project, annotation_count=2).first()
    if reviewed is not None:
        review_decide(
            project=project,
            item_id=reviewed.pk,
            reviewer=lead,
            decision="correct",
            value=two,
            supersedes=None,
        )
    item_gold_set(project=project, item_id=items[2].pk, value=one)
    export_job = ExportJob.objects.create(project=project, format="json", status=ExportJob.Status.SUCCEEDED)
    export_job.file.save("export.json", ContentFile(b"[]"), save=True)
    import_job = ImportJob.objects.create(
        project=project, format="csv", filename="x.csv", upload="imports/x.csv"
    )
    kwargs = {
        "number": version_with_files(project).number,  # the model card and the downloads
        "project_id": project.pk,
        "item_id": items[0].pk,
        "membership_id": Membership.objects.get(project=project, user=a).pk,
        "label_id": label_create(project=project, name="unused").pk,
        "run_id": TrainingRun.objects.create(project=project).pk,
        "import_job_id": import_job.pk,
        "export_job_id": export_job.pk,
    }
    return lead, kwargs


def test_every_page_and_get_endpoint_answers_without_a_server_error(world):
    lead, kwargs = world
    page, api = Client(), APIClient()
    page.force_login(lead)
    api.force_authenticate(lead)
    failures = []
    for route in project_routes():
        roles = route.roles() or {}
        if "GET" not in roles:
            continue
        params = {}
        for param in route.params:
            if param == "job_id":
                params[param] = kwargs["import_job_id" if "import" in route.name else "export_job_id"]
            else:
                params[param] = kwargs[param]
        response = (api if route.is_api else page).get(reverse(route.name, kwargs=params))
        if response.status_code >= 500:
            failures.append(f"{route.name}: {response.status_code}")
    assert not failures
