"""Leads managing their projects from the studio: the members page and API (roles, the pause,
gold accuracy), the settings page, and gold items on the settings page and through the API.

Bad input is a 400 naming the field (a form error on the pages), and nothing changes.
"""

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate import queue
from annotate.gold import item_gold_set
from annotate.models import Item, Membership, Project
from annotate.quality.gold import wilson_interval
from annotate.queue import annotation_submit, assignment_next
from tests.annotate.test_review import assert_kept_right
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

POS, NEG = {"choices": ["positive"]}, {"choices": ["negative"]}


@pytest.fixture
def team():
    """A project with a lead (a manager who is neither staff nor superuser), a reviewer and an annotator."""
    lead, reviewer, annotator = UserFactory(username="lead"), UserFactory(), UserFactory(username="ann")
    project = make_project(
        name="Team Project",
        items=4,
        members=[(lead, Membership.Role.MANAGER), (reviewer, "reviewer"), (annotator, "annotator")],
    )
    # make_project's creator is a second manager; demote them, so the lead is the only one.
    creator = project.memberships.get(user=project.created_by)
    creator.role = Membership.Role.ANNOTATOR
    creator.save()
    assert not (lead.is_staff or lead.is_superuser)
    return project, lead, reviewer, annotator


@pytest.fixture
def lead_client(client, team):
    client.force_login(team[1])
    return client


def _membership(project: Project, user) -> Membership:
    return Membership.objects.get(project=project, user=user)


def _page(name: str, project: Project, *args) -> str:
    return reverse(f"annotate:{name}", args=[project.pk, *args])


def _api(name: str, project: Project, **kwargs) -> str:
    return reverse(f"api:{name}", kwargs={"project_id": project.pk, **kwargs})


def _api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _memberships(project: Project) -> list[tuple]:
    return list(
        project.memberships.order_by("id").values_list("user__username", "role", "paused", "paused_reason")
    )


# The members page ------------------------------------------------------------------------


def test_members_page_shows_each_members_gold_accuracy_interval_and_pause(lead_client, team):
    project, _, _, annotator = team
    Membership.objects.filter(project=project, user=annotator).update(
        gold_answers=10, gold_correct=7, paused=True, paused_reason="too many gold misses"
    )

    response = lead_client.get(_page("members", project))

    assert response.status_code == 200
    assert "annotate/members.html" in [t.name for t in response.templates]
    row = response.text[response.text.index('data-username="ann"') :]
    row = row[: row.index("</tr>")]
    # wilson_interval(7, 10) = (0.397, 0.892)
    assert "70%" in row and "7 of 10; 95% interval 40–89%" in row
    assert "Paused" in row and "too many gold misses" in row
    assert "no gold answers yet" in response.text  # the others


def test_a_lead_adds_an_existing_user_by_username_with_a_role(lead_client, team):
    project = team[0]
    UserFactory(username="newcomer")

    response = lead_client.post(_page("members", project), {"username": "newcomer", "role": "reviewer"})

    assert response.status_code == 302
    assert project.memberships.get(user__username="newcomer").role == "reviewer"


@pytest.mark.parametrize(
    "data,field",
    [
        ({"username": "ghost", "role": "annotator"}, "username"),
        ({"username": "ann", "role": "overlord"}, "role"),
        ({"role": "annotator"}, "username"),
    ],
)
def test_adding_an_unknown_user_or_role_is_a_form_error_naming_the_field(lead_client, team, data, field):
    project = team[0]
    before = _memberships(project)

    response = lead_client.post(_page("members", project), data)

    assert response.status_code == 400
    assert field in response.context["add_form"].errors
    assert _memberships(project) == before


def test_inactive_users_cannot_be_added(lead_client, team):
    project = team[0]
    UserFactory(username="gone", is_active=False)

    response = lead_client.post(_page("members", project), {"username": "gone", "role": "annotator"})

    assert response.status_code == 400
    assert "no active user is named" in str(response.context["add_form"].errors["username"])
    assert not project.memberships.filter(user__username="gone").exists()


def test_a_lead_changes_a_role_pauses_resumes_and_removes_a_member(lead_client, team):
    project, _, _, annotator = team
    membership = _membership(project, annotator)
    url = _page("member", project, membership.pk)

    assert lead_client.post(url, {"action": "role", "role": "reviewer"}).status_code == 302
    assert _membership(project, annotator).role == "reviewer"
    assert lead_client.post(url, {"action": "pause", "reason": "check the guide first"}).status_code == 302
    assert (_membership(project, annotator).paused, _membership(project, annotator).paused_reason) == (
        True,
        "check the guide first",
    )
    page = lead_client.get(_page("members", project))
    assert "check the guide first" in page.text
    assert lead_client.post(url, {"action": "resume"}).status_code == 302
    assert _membership(project, annotator).paused is False
    assert lead_client.post(url, {"action": "remove"}, follow=True).status_code == 200
    assert not project.memberships.filter(user=annotator).exists()


def test_a_paused_member_gets_nothing_from_the_queue_and_is_told_why(lead_client, team):
    project, _, _, annotator = team
    membership = _membership(project, annotator)
    lead_client.post(_page("member", project, membership.pk), {"action": "pause", "reason": "retraining"})

    paused = _api_client(annotator).post(_api("next", project), {}, format="json")
    lead_client.post(_page("member", project, membership.pk), {"action": "resume"})
    resumed = _api_client(annotator).post(_api("next", project), {}, format="json")

    assert paused.status_code == 409
    assert "retraining" in paused.json()["detail"]
    assert resumed.status_code == 200


def test_removing_or_demoting_the_last_manager_is_refused_on_the_page(lead_client, team):
    project, lead = team[0], team[1]
    url = _page("member", project, _membership(project, lead).pk)
    before = _memberships(project)

    removed = lead_client.post(url, {"action": "remove"})
    demoted = lead_client.post(url, {"action": "role", "role": "annotator"})

    assert removed.status_code == demoted.status_code == 400
    assert "at least one manager" in removed.text
    assert "role: a project needs at least one manager" in demoted.text
    assert _memberships(project) == before


@pytest.mark.parametrize(
    "data,message", [({"action": "role"}, "role: choose a role"), ({"action": "fly"}, "action:")]
)
def test_a_bad_member_change_is_a_form_error_and_changes_nothing(lead_client, team, data, message):
    project, _, _, annotator = team
    before = _memberships(project)

    response = lead_client.post(_page("member", project, _membership(project, annotator).pk), data)

    assert response.status_code == 400
    assert message in response.text
    assert _memberships(project) == before


def test_a_member_of_another_project_cannot_be_changed_through_this_one(lead_client, team):
    other = make_project(members=[(UserFactory(username="elsewhere"), "annotator")])
    theirs = other.memberships.get(user__username="elsewhere")

    page = lead_client.post(_page("member", team[0], theirs.pk), {"action": "remove"})
    api = _api_client(team[1]).delete(_api("member-detail", team[0], membership_id=theirs.pk))

    assert page.status_code == api.status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()


def test_a_lead_who_hands_over_and_leaves_is_sent_home(lead_client, team):
    project, lead, reviewer, _ = team
    lead_client.post(
        _page("member", project, _membership(project, reviewer).pk), {"action": "role", "role": "manager"}
    )

    response = lead_client.post(_page("member", project, _membership(project, lead).pk), {"action": "remove"})

    assert response.status_code == 302
    assert response.url == reverse("annotate:home")
    assert not project.memberships.filter(user=lead).exists()


def test_the_project_page_links_members_and_settings_for_managers_only(client, team):
    project, lead, reviewer, _ = team
    members_url, settings_url = _page("members", project), _page("settings", project)

    client.force_login(lead)
    as_lead = client.get(_page("project", project)).text
    client.force_login(reviewer)
    as_reviewer = client.get(_page("project", project)).text

    assert members_url in as_lead and settings_url in as_lead
    assert members_url not in as_reviewer and settings_url not in as_reviewer


# The members API -------------------------------------------------------------------------


def test_member_api_shows_gold_accuracy_with_its_wilson_interval_and_the_pause(team):
    project, lead, _, annotator = team
    Membership.objects.filter(project=project, user=annotator).update(gold_answers=12, gold_correct=9)

    body = _api_client(lead).get(_api("member-list", project)).json()

    [row] = [r for r in body["results"] if r["username"] == "ann"]
    low, high = wilson_interval(9, 12)
    assert row["gold"] == {"answers": 12, "correct": 9, "accuracy": 0.75, "low": low, "high": high}
    assert (row["paused"], row["paused_reason"]) == (False, "")
    [lead_row] = [r for r in body["results"] if r["username"] == "lead"]
    assert lead_row["gold"] == {"answers": 0, "correct": 0, "accuracy": None, "low": None, "high": None}


def test_member_api_pauses_with_a_reason_and_resumes(team):
    project, lead, _, annotator = team
    url = _api("member-detail", project, membership_id=_membership(project, annotator).pk)
    client = _api_client(lead)

    paused = client.patch(url, {"paused": True, "paused_reason": "read the guide"}, format="json")
    refused = _api_client(annotator).post(_api("next", project), {}, format="json")
    resumed = client.patch(url, {"paused": False}, format="json")

    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["paused_reason"]) == (True, "read the guide")
    assert refused.status_code == 409 and "read the guide" in refused.json()["detail"]
    assert resumed.status_code == 200
    assert (resumed.json()["paused"], resumed.json()["paused_reason"]) == (False, "")


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "non_field_errors"),
        ({"role": "overlord"}, "role"),
        ({"paused_reason": "why not"}, "paused_reason"),
        ({"paused": False, "paused_reason": "why not"}, "paused_reason"),
        ({"paused": "maybe"}, "paused"),
        ({"paused": True, "paused_reason": "x" * 301}, "paused_reason"),
    ],
)
def test_member_api_bad_changes_are_400_naming_the_field(team, body, field):
    project, lead, _, annotator = team
    before = _memberships(project)

    response = _api_client(lead).patch(
        _api("member-detail", project, membership_id=_membership(project, annotator).pk), body, format="json"
    )

    assert response.status_code == 400
    assert field in response.json()
    assert _memberships(project) == before


def test_member_api_refuses_an_unknown_username_naming_it(team):
    project, lead = team[0], team[1]
    before = _memberships(project)

    response = _api_client(lead).post(_api("member-list", project), {"username": "ghost"}, format="json")

    assert response.status_code == 400
    assert "no user is named ghost" in response.json()["username"][0]
    assert _memberships(project) == before


def test_a_refused_demotion_of_the_last_manager_names_role_and_leaves_the_pause(team):
    project, lead = team[0], team[1]
    before = _memberships(project)

    response = _api_client(lead).patch(
        _api("member-detail", project, membership_id=_membership(project, lead).pk),
        {"role": "annotator", "paused": True, "paused_reason": "holiday"},
        format="json",
    )
    removed = _api_client(lead).delete(
        _api("member-detail", project, membership_id=_membership(project, lead).pk)
    )

    assert response.status_code == 400
    assert "at least one manager" in response.json()["role"][0]
    assert removed.status_code == 400
    assert "at least one manager" in removed.json()["detail"]
    assert _memberships(project) == before


# The settings page -----------------------------------------------------------------------


def _settings_data(project: Project, **changes) -> dict:
    data = {
        "name": project.name,
        "instructions": project.instructions,
        "overlap": project.overlap,
        "lease_seconds": project.lease_seconds,
        "training_min_labels": project.training_min_labels,
        "retrain_every": project.retrain_every,
        "sampling_strategy": project.sampling_strategy,
        "random_share": project.random_share,
        "text_model": project.text_model,
        "training_params": json.dumps(project.training_params),
        "consensus_method": project.consensus_method,
        "consensus_every": project.consensus_every,
        "gold_share": project.gold_share,
        "gold_pause_below": "" if project.gold_pause_below is None else project.gold_pause_below,
    }
    data.update(changes)
    return data


def _settings(project: Project) -> tuple:
    project = Project.objects.get(pk=project.pk)
    return tuple(getattr(project, name) for name in _settings_data(project))


def test_settings_page_shows_every_setting_to_a_lead(lead_client, team):
    response = lead_client.get(_page("settings", team[0]))

    assert response.status_code == 200
    assert "annotate/settings.html" in [t.name for t in response.templates]
    for name in _settings_data(team[0]):
        assert f'name="{name}"' in response.text, name
    assert "Final labels: the majority vote" in response.text


def test_saving_settings_goes_through_project_update(lead_client, team):
    project, _, _, annotator = team
    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(project=project, item_id=lease.item.pk, annotator=annotator, value=POS)
    assert Item.objects.get(pk=lease.item.pk).is_complete  # overlap 1

    response = lead_client.post(
        _page("settings", project),
        _settings_data(
            project,
            overlap=2,
            instructions="Be *kind*.",
            gold_share="0.1",
            gold_pause_below="0.6",
            consensus_every=50,
            retrain_every=20,
        ),
    )

    project.refresh_from_db()
    assert response.status_code == 302
    assert (project.overlap, project.instructions, project.gold_share, project.gold_pause_below) == (
        2,
        "Be *kind*.",
        0.1,
        0.6,
    )
    assert (project.consensus_every, project.retrain_every) == (50, 20)
    # The service re-derives completeness for the new overlap.
    assert not Item.objects.get(pk=lease.item.pk).is_complete
    assert_kept_right(project)


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"gold_share": "0.9"}, "gold_share"),
        ({"gold_share": "-0.1"}, "gold_share"),
        ({"gold_pause_below": "1.5"}, "gold_pause_below"),
        ({"overlap": "0"}, "overlap"),
        ({"lease_seconds": "5"}, "lease_seconds"),
        ({"consensus_method": "coin_flip"}, "consensus_method"),
        ({"sampling_strategy": "psychic"}, "sampling_strategy"),
        ({"consensus_every": "-1"}, "consensus_every"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_setting_is_shown_under_its_field_and_nothing_changes(lead_client, team, changes, field):
    project = team[0]
    before = _settings(project)

    response = lead_client.post(
        _page("settings", project), _settings_data(project, **{"overlap": 3, **changes})
    )

    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert f'data-field="{field}"' in response.text
    assert _settings(project) == before


def test_dawid_skene_is_refused_on_a_multi_label_project_under_its_field(client):
    lead = UserFactory()
    project = make_project(multi_label=True, members=[(lead, Membership.Role.MANAGER)])
    client.force_login(lead)

    response = client.post(
        _page("settings", project), _settings_data(project, consensus_method="dawid_skene")
    )

    assert response.status_code == 400
    assert "single-label projects only" in str(response.context["form"].errors["consensus_method"])
    assert Project.objects.get(pk=project.pk).consensus_method == "majority"


def test_switching_to_dawid_skene_queues_a_recompute_of_the_final_labels(
    lead_client, team, django_capture_on_commit_callbacks
):
    project = team[0]

    with django_capture_on_commit_callbacks() as callbacks:
        response = lead_client.post(
            _page("settings", project), _settings_data(project, consensus_method="dawid_skene"), follow=True
        )

    assert response.status_code == 200
    assert Project.objects.get(pk=project.pk).consensus_method == "dawid_skene"
    assert "The final labels are being recomputed by the new method" in response.text
    assert len(callbacks) == 1  # one recompute, queued by project_update


def test_recompute_now_queues_a_recompute_for_dawid_skene_and_says_so_for_majority(
    lead_client, team, django_capture_on_commit_callbacks
):
    project = team[0]
    url = _page("consensus-recompute", project)

    with django_capture_on_commit_callbacks() as majority_callbacks:
        majority = lead_client.post(url, follow=True)
    Project.objects.filter(pk=project.pk).update(consensus_method="dawid_skene")
    with django_capture_on_commit_callbacks() as ds_callbacks:
        dawid_skene = lead_client.post(url, follow=True)

    assert "nothing to recompute" in majority.text and not majority_callbacks
    assert "A recompute of the final labels is queued." in dawid_skene.text and len(ds_callbacks) == 1


def test_reviewers_and_annotators_cannot_change_settings(client, team):
    project, _, reviewer, annotator = team
    before = _settings(project)
    for user in (reviewer, annotator):
        client.force_login(user)
        assert client.post(_page("settings", project), _settings_data(project, overlap=5)).status_code == 403
    assert _settings(project) == before


# Gold items on the settings page ---------------------------------------------------------


def _item(project: Project, n: int = 0) -> Item:
    return project.items.order_by("id")[n]


def test_a_lead_marks_an_item_as_gold_by_external_id_and_clears_it(lead_client, team):
    project = team[0]
    item = _item(project)

    marked = lead_client.post(_page("gold-mark", project), {"item": item.external_id, "labels": "negative"})
    page = lead_client.get(_page("settings", project))
    item.refresh_from_db()

    assert marked.status_code == 302
    assert (item.pick_kind, item.gold_value, item.final_value, item.final_source) == (
        "gold",
        NEG,
        NEG,
        "gold",
    )
    assert f'id="gold-{item.pk}"' in page.text
    assert_kept_right(project)

    cleared = lead_client.post(_page("gold-clear", project, item.pk))

    item.refresh_from_db()
    assert cleared.status_code == 302
    assert (item.pick_kind, item.gold_value, item.final_source) == ("queue", None, "none")
    assert_kept_right(project)


def test_gold_on_a_multi_label_project_takes_several_labels(client):
    lead = UserFactory()
    project = make_project(multi_label=True, items=1, members=[(lead, Membership.Role.MANAGER)])
    client.force_login(lead)

    response = client.post(
        _page("gold-mark", project), {"item": _item(project).external_id, "labels": ["negative", "positive"]}
    )

    assert response.status_code == 302
    assert _item(project).gold_value == {"choices": ["positive", "negative"]}  # in label order


@pytest.mark.parametrize(
    "data,field",
    [
        ({"item": "t0", "labels": "maybe"}, "labels"),
        ({"item": "no-such-item", "labels": "positive"}, "item"),
        ({"labels": "positive"}, "item"),
        ({"item": "t0"}, "labels"),
    ],
)
def test_a_bad_gold_mark_is_a_form_error_naming_the_field_and_changes_nothing(lead_client, team, data, field):
    project = team[0]

    response = lead_client.post(_page("gold-mark", project), data)

    assert response.status_code == 400
    assert field in response.context["gold_form"].errors
    assert not project.items.filter(pick_kind="gold").exists()


def test_clearing_an_item_that_is_not_gold_is_refused_and_another_projects_is_404(lead_client, team):
    project = team[0]
    other = make_project(items=1)

    not_gold = lead_client.post(_page("gold-clear", project, _item(project).pk))
    elsewhere = lead_client.post(_page("gold-clear", project, _item(other).pk))

    assert not_gold.status_code == 400
    assert "is not a gold item" in not_gold.text
    assert elsewhere.status_code == 404


# Gold items through the API --------------------------------------------------------------


def test_gold_api_sets_changes_and_clears_an_items_true_value(team):
    project, lead = team[0], team[1]
    item = _item(project)
    url = _api("item-gold", project, item_id=item.pk)
    client = _api_client(lead)

    set_ = client.put(url, {"value": POS}, format="json")
    changed = client.put(url, {"value": NEG}, format="json")
    shown = client.get(url)

    assert set_.status_code == changed.status_code == shown.status_code == 200
    assert set_.json()["final_source"] == "gold" and set_.json()["gold_value"] == POS
    assert shown.json() == {**changed.json()}
    assert (changed.json()["pick_kind"], changed.json()["final_value"]) == ("gold", NEG)
    assert_kept_right(project)

    cleared = client.delete(url)

    assert cleared.status_code == 200
    assert (cleared.json()["pick_kind"], cleared.json()["gold_value"], cleared.json()["final_source"]) == (
        "queue",
        None,
        "none",
    )
    assert_kept_right(project)


@pytest.mark.parametrize(
    "body,message",
    [
        ({"value": {"choices": ["maybe"]}}, "unknown label 'maybe'"),
        ({"value": {"choices": ["positive", "negative"]}}, "single-label"),
        ({"value": "positive"}, "exactly one key"),
        ({"value": None}, "may not be null"),
        ({}, "required"),
    ],
)
def test_gold_api_refuses_a_bad_value_naming_value_and_changes_nothing(team, body, message):
    project, lead = team[0], team[1]
    item = _item(project)

    response = _api_client(lead).put(_api("item-gold", project, item_id=item.pk), body, format="json")

    item.refresh_from_db()
    assert response.status_code == 400
    assert message in response.json()["value"][0]
    assert (item.pick_kind, item.gold_value, item.final_source) == ("queue", None, "none")


def test_gold_api_is_404_for_another_projects_item_and_400_to_clear_an_ordinary_one(team):
    project, lead = team[0], team[1]
    other = make_project(items=1)
    client = _api_client(lead)

    elsewhere = client.put(_api("item-gold", project, item_id=_item(other).pk), {"value": POS}, format="json")
    ordinary = client.delete(_api("item-gold", project, item_id=_item(project).pk))

    assert elsewhere.status_code == 404
    assert _item(other).pick_kind == "queue"
    assert ordinary.status_code == 400
    assert "not a gold item" in ordinary.json()["item"][0]


def test_gold_api_is_for_managers_only(team):
    project, _, reviewer, annotator = team
    item = _item(project)
    for user in (reviewer, annotator):
        response = _api_client(user).put(
            _api("item-gold", project, item_id=item.pk), {"value": POS}, format="json"
        )
        assert response.status_code == 403
    assert _item(project).pick_kind == "queue"


class _AlwaysGold:
    """The queue's gold draw, always won: every next item is gold while any is left."""

    def random(self) -> float:
        return 0.0


def test_gold_answers_show_on_the_members_page_and_api(lead_client, team, monkeypatch):
    project, lead, _, annotator = team
    project.gold_share = 0.5
    project.save(update_fields=["gold_share"])
    for item in project.items.order_by("id")[:2]:
        item_gold_set(project=project, item_id=item.pk, value=POS)
    monkeypatch.setattr(queue, "_random", _AlwaysGold())
    membership = _membership(project, annotator)
    for value in (POS, NEG):
        lease = assignment_next(project=project, annotator=annotator, membership=membership)
        assert lease.item.pick_kind == "gold"
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=annotator, membership=membership, value=value
        )

    body = _api_client(lead).get(_api("member-list", project)).json()
    page = lead_client.get(_page("members", project)).text

    [row] = [r for r in body["results"] if r["username"] == "ann"]
    assert (row["gold"]["answers"], row["gold"]["correct"], row["gold"]["accuracy"]) == (2, 1, 0.5)
    assert "1 of 2; 95% interval 9–91%" in page


def test_the_openapi_schema_documents_the_gold_endpoint_and_member_pause(team):
    schema = APIClient().get("/api/schema/", {"format": "json"})

    assert schema.status_code == 200
    paths, components = schema.json()["paths"], schema.json()["components"]["schemas"]
    gold = paths["/api/projects/{project_id}/items/{item_id}/gold/"]
    assert {"get", "put", "delete"} <= set(gold)
    assert "GoldInputRequest" in str(gold["put"]["requestBody"])
    assert {"paused", "paused_reason", "gold"} <= set(components["MemberOutput"]["properties"])
    assert {"role", "paused", "paused_reason"} <= set(
        components["PatchedMemberUpdateInputRequest"]["properties"]
    )
