"""Deleting a project from its page, after a confirmation that counts what goes, and the audit
log of exports, deletions, member and role changes, deactivations and retraining (issue 17,
item 6). Each action is taken through its real path (page, API, admin) and leaves exactly one
event with its actor and detail; a refused action leaves none; the log is the managers'."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import AuditEvent, ExportJob, Item, Project
from tests.factories import AnnotationFactory, ItemFactory, UserFactory, make_project
from training.models import DatasetSnapshot, ModelVersion, Prediction, TrainingRun

pytestmark = pytest.mark.django_db

A = AuditEvent.Action
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
    b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def world():
    lead, annotator, other_lead = UserFactory(), UserFactory(), UserFactory()
    project = make_project(name="Reviews", items=3, members=[(lead, "manager"), (annotator, "annotator")])
    make_project(name="Elsewhere", members=[(other_lead, "manager")])
    return project, lead, annotator, other_lead


def _api(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _events(project_id, action):
    return list(AuditEvent.objects.filter(project_ref=project_id, action=action))


def _one(project_id, action) -> AuditEvent:
    events = _events(project_id, action)
    assert len(events) == 1, events
    return events[0]


def _trained_rows(project):
    """A model version with a prediction and a run, as training stores them (no files)."""
    dataset = DatasetSnapshot.objects.create(
        project=project, classes=["a", "b"], item_ids=[], values=[], validation_ids=[], fingerprint="x"
    )
    version = ModelVersion.objects.create(
        project=project, number=1, backend="text", params={}, dataset=dataset, metrics={}, artifact_path=""
    )
    item = project.items.first()
    Prediction.objects.create(
        item=item, model_version=version, value={"choices": ["a"]}, probabilities=[0.6, 0.4], score=0.6,
        uncertainty=0.4,
    )  # fmt: skip
    TrainingRun.objects.create(project=project, status=TrainingRun.Status.SUCCEEDED, model_version=version)


# Exports -------------------------------------------------------------------------------------


def test_an_api_export_records_one_event_with_its_format(world):
    project, lead, *_ = world
    response = _api(lead).get(f"/api/projects/{project.pk}/export/?format=jsonl&labeled_only=true")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = _one(project.pk, A.EXPORT)
    assert event.actor == lead and event.project == project
    assert event.detail == {"format": "jsonl", "labeled_only": True, "reviewed_only": False}


def test_a_page_export_records_one_event(world):
    project, lead, *_ = world
    response = _page(lead).get(reverse("annotate:export", args=[project.pk]), {"format": "csv"})
    assert response.status_code == 200
    event = _one(project.pk, A.EXPORT)
    assert event.actor == lead and event.detail["format"] == "csv"


def test_a_background_export_records_its_job(world):
    project, lead, *_ = world
    response = _api(lead).post(f"/api/projects/{project.pk}/exports/", {"format": "json"}, format="json")
    assert response.status_code == 202
    job = ExportJob.objects.get(project=project)
    assert _one(project.pk, A.EXPORT).detail == {
        "format": "json", "labeled_only": False, "reviewed_only": False, "job": job.pk,
    }  # fmt: skip


def test_an_export_in_a_format_the_project_lacks_records_nothing(world):
    project, lead, *_ = world
    response = _api(lead).get(f"/api/projects/{project.pk}/export/?format=coco")
    assert response.status_code == 400
    assert _events(project.pk, A.EXPORT) == []


# Deleting ------------------------------------------------------------------------------------


def test_the_confirmation_page_counts_what_goes_with_the_project(world):
    project, lead, *_ = world
    AnnotationFactory(item=project.items.first())
    ItemFactory(project=project, image=ContentFile(PNG, name="pixel.png"), width=1, height=1)
    _trained_rows(project)
    response = _page(lead).get(reverse("annotate:project-delete", args=[project.pk]))
    assert response.status_code == 200
    counts = dict(response.context["counts"])
    assert counts["items"] == 4 and counts["annotations"] == 1 and counts["image files"] == 1
    assert counts["model versions"] == 1 and counts["predictions"] == 1 and counts["training runs"] == 1
    assert "tallys" not in counts
    assert b"<strong>4</strong> items" in response.content


def test_the_settings_page_offers_deletion_and_the_audit_log_to_managers(world):
    project, lead, *_ = world
    content = _page(lead).get(reverse("annotate:settings", args=[project.pk])).content.decode()
    assert reverse("annotate:project-delete", args=[project.pk]) in content
    assert reverse("annotate:audit", args=[project.pk]) in content


def test_a_wrong_name_deletes_nothing_and_shows_the_page_again(world):
    project, lead, *_ = world
    url = reverse("annotate:project-delete", args=[project.pk])
    response = _page(lead).post(url, {"name": "reviews"})
    assert response.status_code == 400
    assert "not this project&#x27;s name" in response.content.decode()
    assert Project.objects.filter(pk=project.pk).exists()
    assert _events(project.pk, A.PROJECT_DELETED) == []


def test_the_deletion_form_is_csrf_protected(world):
    project, lead, *_ = world
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post(reverse("annotate:project-delete", args=[project.pk]), {"name": "Reviews"})
    assert response.status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()


def test_an_annotator_may_not_delete_the_project(world):
    project, _, annotator, _ = world
    response = _page(annotator).post(
        reverse("annotate:project-delete", args=[project.pk]), {"name": "Reviews"}
    )
    assert response.status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()


def test_deleting_on_the_page_takes_everything_and_its_files_and_the_event_survives(
    world, django_capture_on_commit_callbacks
):
    project, lead, *_ = world
    _trained_rows(project)
    image = ItemFactory(
        project=project, image=ContentFile(PNG, name="pixel.png"), width=1, height=1
    ).image.name
    job = ExportJob.objects.create(project=project, format="json", status=ExportJob.Status.SUCCEEDED)
    job.file.save("export.json", ContentFile(b"[]"), save=True)
    export_file = job.file.name
    assert default_storage.exists(image) and default_storage.exists(export_file)
    pk = project.pk
    with django_capture_on_commit_callbacks(execute=True):
        response = _page(lead).post(
            reverse("annotate:project-delete", args=[pk]), {"name": "Reviews"}, follow=True
        )
    assert response.redirect_chain[-1][0] == reverse("annotate:home")
    assert "was deleted" in response.content.decode()
    assert not Project.objects.filter(pk=pk).exists()
    assert not Item.objects.filter(project_id=pk).exists()
    assert not ModelVersion.objects.filter(project_id=pk).exists()
    assert not TrainingRun.objects.filter(project_id=pk).exists()
    assert not default_storage.exists(image) and not default_storage.exists(export_file)
    event = _one(pk, A.PROJECT_DELETED)
    assert event.project is None and event.project_name == "Reviews" and event.actor == lead
    assert event.detail["counts"]["items"] == 4 and event.detail["counts"]["model versions"] == 1


def test_deleting_through_the_api_records_one_event_naming_the_project(world):
    project, lead, *_ = world
    pk = project.pk
    assert _api(lead).delete(f"/api/projects/{pk}/?confirm=Reviews").status_code == 204
    event = _one(pk, A.PROJECT_DELETED)
    assert event.actor == lead and event.detail["name"] == "Reviews" and event.project_id is None


# Members and accounts ------------------------------------------------------------------------


def test_a_role_change_through_the_api_records_from_and_to(world):
    project, lead, annotator, _ = world
    membership = project.memberships.get(user=annotator)
    url = f"/api/projects/{project.pk}/members/{membership.pk}/"
    assert _api(lead).patch(url, {"role": "reviewer"}, format="json").status_code == 200
    event = _one(project.pk, A.ROLE_CHANGED)
    assert event.actor == lead
    assert event.detail == {"member": annotator.username, "from": "annotator", "to": "reviewer"}


def test_a_role_change_on_the_members_page_records_one_event(world):
    project, lead, annotator, _ = world
    membership = project.memberships.get(user=annotator)
    url = reverse("annotate:member", args=[project.pk, membership.pk])
    assert _page(lead).post(url, {"action": "role", "role": "manager"}).status_code == 302
    assert _one(project.pk, A.ROLE_CHANGED).detail["to"] == "manager"


def test_a_refused_role_change_records_nothing(world):
    project, lead, *_ = world
    # The creator and the lead are the managers: demote one, then the last one is refused.
    creator = project.memberships.exclude(user=lead).get(role="manager")
    assert (
        _api(lead)
        .patch(f"/api/projects/{project.pk}/members/{creator.pk}/", {"role": "annotator"}, format="json")
        .status_code
        == 200
    )
    mine = project.memberships.get(user=lead)
    response = _api(lead).patch(
        f"/api/projects/{project.pk}/members/{mine.pk}/", {"role": "annotator", "paused": True}, format="json"
    )
    assert response.status_code == 400
    assert len(_events(project.pk, A.ROLE_CHANGED)) == 1
    assert _events(project.pk, A.MEMBER_PAUSED) == []


def test_adding_pausing_and_removing_members_are_recorded(world):
    project, lead, annotator, _ = world
    newcomer = UserFactory()
    api = _api(lead)
    assert (
        api.post(
            f"/api/projects/{project.pk}/members/",
            {"username": newcomer.username, "role": "annotator"},
            format="json",
        ).status_code
        == 201
    )
    membership = project.memberships.get(user=annotator)
    url = f"/api/projects/{project.pk}/members/{membership.pk}/"
    assert api.patch(url, {"paused": True, "paused_reason": "too fast"}, format="json").status_code == 200
    assert api.delete(url).status_code == 204
    added = AuditEvent.objects.get(project=project, action=A.MEMBER_ADDED, detail__member=newcomer.username)
    assert added.actor == lead
    assert _one(project.pk, A.MEMBER_PAUSED).detail == {"member": annotator.username, "reason": "too fast"}
    assert _one(project.pk, A.MEMBER_REMOVED).detail == {"member": annotator.username, "role": "annotator"}


def test_a_deactivation_records_one_event_in_the_members_project(world):
    project, lead, annotator, _ = world
    membership = project.memberships.get(user=annotator)
    response = _api(lead).post(f"/api/projects/{project.pk}/members/{membership.pk}/deactivate/")
    assert response.status_code == 200
    event = _one(project.pk, A.ACCOUNT_DEACTIVATED)
    assert event.actor == lead and event.detail == {"member": annotator.username}


def test_a_refused_deactivation_records_nothing(world):
    project, lead, annotator, other_lead = world
    make_project(members=[(annotator, "annotator")])  # a project the lead does not manage
    membership = project.memberships.get(user=annotator)
    response = _api(lead).post(f"/api/projects/{project.pk}/members/{membership.pk}/deactivate/")
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action=A.ACCOUNT_DEACTIVATED).exists()


# Retraining ----------------------------------------------------------------------------------


def test_retrain_now_in_the_admin_records_one_event(world):
    project, lead, *_ = world
    lead.is_staff = True
    lead.save()
    response = _page(lead).post(
        reverse("admin:annotate_project_changelist"),
        {"action": "retrain_now", "_selected_action": [project.pk]},
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get(project=project)
    event = _one(project.pk, A.RETRAINING_REQUESTED)
    assert event.actor == lead and event.detail == {"run": run.pk, "trigger": "admin"}


def test_a_request_that_joins_an_open_run_records_nothing_more(world):
    from training.runs import training_run_request

    project, lead, *_ = world
    training_run_request(project=project, trigger="api", requested_by=lead)
    _, created = training_run_request(project=project, trigger="api", requested_by=lead)
    assert not created
    assert len(_events(project.pk, A.RETRAINING_REQUESTED)) == 1


def test_the_automatic_retraining_is_recorded_without_an_actor(world):
    from training.runs import training_auto_request

    project, *_ = world
    Project.objects.filter(pk=project.pk).update(retrain_every=1)
    project.refresh_from_db()
    AnnotationFactory(item=project.items.first())
    run = training_auto_request(project=project)
    assert run is not None
    event = _one(project.pk, A.RETRAINING_REQUESTED)
    assert event.actor is None and event.detail["run"] == run.pk
    assert event.detail["trigger"].startswith("auto")


# Who sees the log ----------------------------------------------------------------------------


def _some_events(project, lead, annotator):
    membership = project.memberships.get(user=annotator)
    _api(lead).patch(
        f"/api/projects/{project.pk}/members/{membership.pk}/", {"role": "reviewer"}, format="json"
    )


def test_the_audit_page_shows_the_managers_the_events_in_words(world):
    project, lead, annotator, _ = world
    _some_events(project, lead, annotator)
    response = _page(lead).get(reverse("annotate:audit", args=[project.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert f"{annotator.username}: annotator → reviewer" in content and lead.username in content


def test_the_audit_page_is_403_to_an_annotator_and_404_to_another_projects_lead(world):
    project, lead, annotator, other_lead = world
    url = reverse("annotate:audit", args=[project.pk])
    assert _page(annotator).get(url).status_code == 403
    assert _page(other_lead).get(url).status_code == 404


@pytest.mark.parametrize("page", ["x", "0", "-3", "2.5", "99999999999999999999999", "1e999"])
def test_a_bad_page_number_on_the_audit_page_is_no_error(world, page):
    project, lead, *_ = world
    assert _page(lead).get(reverse("annotate:audit", args=[project.pk]), {"page": page}).status_code == 200


def test_the_audit_page_shows_fifty_a_page_newest_first(world):
    project, lead, annotator, _ = world
    membership = project.memberships.get(user=annotator)
    api = _api(lead)
    for _ in range(26):  # 52 role changes
        for role in ("reviewer", "annotator"):
            api.patch(f"/api/projects/{project.pk}/members/{membership.pk}/", {"role": role}, format="json")
    client = _page(lead)
    first = client.get(reverse("annotate:audit", args=[project.pk]))
    rows = first.context["rows"]
    assert len(rows) == 50 and rows[0][0].pk > rows[-1][0].pk
    second = client.get(reverse("annotate:audit", args=[project.pk]), {"page": 2})
    assert len(second.context["rows"]) == AuditEvent.objects.filter(project=project).count() - 50


def test_the_audit_api_lists_the_events_newest_first_to_managers_only(world):
    project, lead, annotator, other_lead = world
    _some_events(project, lead, annotator)
    url = f"/api/projects/{project.pk}/audit/"
    response = _api(lead).get(url)
    assert response.status_code == 200
    results = response.json()["results"]
    ids = [row["id"] for row in results]
    assert ids == sorted(ids, reverse=True)
    assert results[0]["action"] == "role_changed" and results[0]["actor"] == lead.username
    assert results[0]["detail"] == {"member": annotator.username, "from": "annotator", "to": "reviewer"}
    assert results[0]["description"] == f"{annotator.username}: annotator → reviewer"
    assert _api(annotator).get(url).status_code == 403
    assert _api(other_lead).get(url).status_code == 404


def test_the_admin_shows_a_lead_their_projects_events_only_and_changes_none(world):
    project, lead, annotator, other_lead = world
    _some_events(project, lead, annotator)
    elsewhere = Project.objects.get(name="Elsewhere")
    theirs = AuditEvent.objects.create(project=elsewhere, project_name="Elsewhere", action=A.EXPORT)
    ours = AuditEvent.objects.get(project=project, action=A.ROLE_CHANGED)
    lead.is_staff = True
    lead.save()
    client = _page(lead)
    listing = client.get(reverse("admin:annotate_auditevent_changelist"))
    assert listing.status_code == 200
    shown = {event.pk for event in listing.context["cl"].result_list}
    assert ours.pk in shown and theirs.pk not in shown
    assert client.get(reverse("admin:annotate_auditevent_change", args=[theirs.pk])).status_code == 302
    assert client.get(reverse("admin:annotate_auditevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:annotate_auditevent_delete", args=[ours.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=ours.pk).exists()


def test_the_admin_shows_a_superuser_a_deleted_projects_event(world):
    project, lead, *_ = world
    pk = project.pk
    assert _api(lead).delete(f"/api/projects/{pk}/?confirm=Reviews").status_code == 204
    admin = UserFactory(is_staff=True, is_superuser=True)
    listing = _page(admin).get(reverse("admin:annotate_auditevent_changelist"))
    assert _one(pk, A.PROJECT_DELETED).pk in {event.pk for event in listing.context["cl"].result_list}


def test_the_admin_shows_the_lead_who_deleted_a_project_its_deletion_and_other_leads_not(world):
    project, lead, _, other_lead = world
    pk = project.pk
    assert _api(lead).delete(f"/api/projects/{pk}/?confirm=Reviews").status_code == 204
    deletion = _one(pk, A.PROJECT_DELETED).pk
    for user, sees in ((lead, True), (other_lead, False)):
        user.is_staff = True
        user.save()
        listing = _page(user).get(reverse("admin:annotate_auditevent_changelist"))
        assert (deletion in {event.pk for event in listing.context["cl"].result_list}) is sees, user
