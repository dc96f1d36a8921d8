import pytest
from django.db.models.fields.files import FieldFile
from django.urls import reverse

from annotate.gold import item_gold_set
from annotate.models import Annotation, Item, Label, Membership, Project, Review
from annotate.queue import annotation_submit, assignment_next
from tests.annotate.test_review import assert_kept_right
from tests.factories import AnnotationFactory, ItemFactory, UserFactory, make_project

pytestmark = pytest.mark.django_db

B_NAME = "Secret Beta Project"
B_TEXT = "beta confidential sentence"
B_LABEL = "beta-only-label"
B_MANAGER = "beta-boss"


@pytest.fixture
def lead():
    return UserFactory(username="lead", is_staff=True)


@pytest.fixture
def project_a(lead):
    return make_project(name="Alpha Project", items=2, members=[(lead, Membership.Role.MANAGER)])


@pytest.fixture
def project_b():
    project = make_project(
        name=B_NAME,
        labels=[B_LABEL, "other"],
        members=[(UserFactory(username=B_MANAGER), Membership.Role.MANAGER)],
    )
    ItemFactory(project=project, external_id="beta-item", text=B_TEXT)
    return project


@pytest.fixture
def lead_client(client, lead, project_a, project_b):
    client.force_login(lead)
    return client


def _url(name: str, *args) -> str:
    return reverse(f"admin:annotate_{name}", args=args)


def _form_data(response) -> dict:
    """The POST data of the admin change form as rendered: the main form, each inline's
    management form and its existing rows (extra rows are left out)."""
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        forms.append(management)
        forms.extend(formset.initial_forms)
        data[f"{formset.prefix}-TOTAL_FORMS"] = len(formset.initial_forms)
    for form in forms:
        for field in form:
            value = field.value()
            if isinstance(value, FieldFile):
                continue
            if isinstance(value, bool):
                if value:
                    data[field.html_name] = "on"
            elif value is not None:
                data.setdefault(field.html_name, value)
    return data


def _annotate(project: Project, *choices: str, count: int = 1) -> None:
    item = project.items.first() or ItemFactory(project=project)
    for _ in range(count):
        AnnotationFactory(item=item, value={"choices": list(choices)})


# Scoping --------------------------------------------------------------------------------


def test_lead_sees_own_project_and_not_another_in_the_changelist(lead_client):
    response = lead_client.get(_url("project_changelist"))

    assert response.status_code == 200
    assert "Alpha Project" in response.text
    assert B_NAME not in response.text


def test_lead_gets_no_data_of_another_projects_change_page(lead_client, project_b):
    response = lead_client.get(_url("project_change", project_b.pk), follow=True)

    assert response.redirect_chain[0][0] == reverse("admin:index")
    assert "doesn’t exist" in response.text
    for secret in (B_NAME, B_LABEL, B_MANAGER):
        assert secret not in response.text


def test_lead_gets_no_data_of_another_projects_item(lead_client, project_b):
    item = project_b.items.get()

    response = lead_client.get(_url("item_change", item.pk), follow=True)

    assert response.redirect_chain[0][0] == reverse("admin:index")
    assert B_TEXT not in response.text
    assert "beta-item" not in response.text


def test_lead_cannot_save_another_projects_item_or_project(lead_client, project_b):
    item = project_b.items.get()

    lead_client.post(_url("item_change", item.pk), {"external_id": "stolen", "text": "x", "priority": 9})
    lead_client.post(_url("project_change", project_b.pk), {"name": "stolen", "overlap": 3})

    item.refresh_from_db()
    project_b.refresh_from_db()
    assert (item.external_id, item.priority) == ("beta-item", 0.0)
    assert (project_b.name, project_b.overlap) == (B_NAME, 1)


def test_lead_cannot_delete_another_project_with_the_bulk_action(lead_client, project_a, project_b):
    response = lead_client.post(
        _url("project_changelist"),
        {"action": "delete_selected", "_selected_action": [project_b.pk], "post": "yes"},
    )

    assert response.status_code in (200, 302)
    assert Project.objects.filter(pk=project_b.pk).exists()


def test_lead_can_delete_their_own_project_with_the_bulk_action(lead_client, project_a, project_b):
    response = lead_client.post(
        _url("project_changelist"),
        {"action": "delete_selected", "_selected_action": [project_a.pk, project_b.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Project.objects.filter(pk=project_a.pk).exists()
    assert Project.objects.filter(pk=project_b.pk).exists()


def test_item_changelist_for_a_lead_lists_only_their_items_and_filters_by_their_projects(
    lead_client, lead, project_a
):
    empty = make_project(name="Gamma Without Items", members=[(lead, Membership.Role.MANAGER)])

    response = lead_client.get(_url("item_changelist"))

    assert response.status_code == 200
    assert {item.project_id for item in response.context["cl"].result_list} == {project_a.pk}
    assert response.context["cl"].result_count == 2
    assert "beta-item" not in response.text
    assert B_TEXT not in response.text
    assert B_NAME not in response.text
    assert "Alpha Project" in response.text
    assert f"project__id__exact={empty.pk}" in response.text


def test_item_add_form_offers_only_managed_projects(lead_client, project_a, project_b):
    response = lead_client.get(_url("item_add"))

    choices = list(response.context["adminform"].form.fields["project"].queryset)
    assert response.status_code == 200
    assert choices == [project_a]
    assert B_NAME not in response.text


def test_lead_cannot_add_an_item_to_another_project(lead_client, project_b):
    response = lead_client.post(
        _url("item_add"), {"project": project_b.pk, "external_id": "planted", "text": "x", "priority": 0}
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert not Item.objects.filter(external_id="planted").exists()


def test_superuser_sees_all_projects_and_items(client, project_a, project_b):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    projects = client.get(_url("project_changelist"))
    items = client.get(_url("item_changelist"))

    assert projects.status_code == items.status_code == 200
    assert "Alpha Project" in projects.text
    assert B_NAME in projects.text
    assert items.context["cl"].result_count == 3


@pytest.mark.parametrize("role", [None, Membership.Role.ANNOTATOR, Membership.Role.REVIEWER])
def test_staff_user_who_manages_nothing_gets_no_labelloop_models(client, project_a, role):
    user = UserFactory(username="staffer", is_staff=True)
    if role:
        Membership.objects.create(project=project_a, user=user, role=role)
    client.force_login(user)

    index = client.get(reverse("admin:index"))
    changelist = client.get(_url("project_changelist"))

    assert index.status_code == 200
    assert index.context["app_list"] == []
    assert "Projects" not in index.text
    assert changelist.status_code == 403


def test_manager_who_is_not_staff_cannot_enter_the_admin(client, project_a):
    client.force_login(project_a.created_by)

    response = client.get(_url("project_changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_lead_sees_the_labelloop_models_on_the_index(lead_client):
    response = lead_client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert "LabelLoop admin" in response.text
    apps = response.context["app_list"]
    models = {(app["app_label"], m["object_name"]) for app in apps for m in app["models"]}
    assert models == {
        ("annotate", "Project"),
        ("annotate", "Item"),
        ("annotate", "AuditEvent"),
        ("training", "ModelVersion"),
        ("training", "TrainingRun"),
    }


def test_lead_of_one_project_never_gets_another_projects_data_from_any_admin_url(
    lead_client, project_a, project_b
):
    item_b = project_b.items.get()
    urls = [
        _url("project_changelist"),
        _url("project_changelist") + f"?q={B_NAME[:6]}",
        _url("project_add"),
        _url("project_change", project_b.pk),
        _url("project_delete", project_b.pk),
        _url("project_history", project_b.pk),
        _url("item_changelist"),
        _url("item_changelist") + f"?project__id__exact={project_b.pk}",
        _url("item_changelist") + "?q=beta",
        _url("item_add"),
        _url("item_change", item_b.pk),
        _url("item_delete", item_b.pk),
        _url("item_history", item_b.pk),
        reverse("admin:autocomplete") + "?app_label=annotate&model_name=item&field_name=project&term=Beta",
    ]
    for url in urls:
        for method in ("get", "post"):
            response = getattr(lead_client, method)(url, follow=True)

            assert response.status_code in (200, 403, 405), (method, url)
            assert B_NAME not in response.text, (method, url)
            assert B_TEXT not in response.text, (method, url)
    assert Project.objects.filter(pk=project_b.pk).exists()
    assert Item.objects.filter(pk=item_b.pk).exists()


# Writes go through the services ---------------------------------------------------------


def test_renaming_a_label_in_the_admin_keeps_its_annotations(lead_client, project_a):
    _annotate(project_a, "positive", count=2)
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    positive = Label.objects.get(project=project_a, name="positive")
    [index] = [i for i in range(len(project_a.labels.all())) if data[f"labels-{i}-id"] == positive.pk]
    data[f"labels-{index}-name"] = "upbeat"

    response = lead_client.post(change_url, data)

    assert response.status_code == 302
    assert Label.objects.get(pk=positive.pk).name == "upbeat"
    values = list(Annotation.objects.filter(project=project_a).values_list("value", flat=True))
    assert values == [{"choices": ["upbeat"]}] * 2


def test_deleting_a_used_label_in_the_admin_is_refused_with_the_count(lead_client, project_a):
    _annotate(project_a, "negative", count=3)
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    negative = Label.objects.get(project=project_a, name="negative")
    [index] = [i for i in range(2) if data[f"labels-{i}-id"] == negative.pk]
    data[f"labels-{index}-DELETE"] = "on"

    response = lead_client.post(change_url, data, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [(change_url, 302)]
    assert "is used by 3 annotations; it cannot be deleted" in response.text
    assert "was changed successfully" not in response.text
    assert Label.objects.filter(pk=negative.pk).exists()


def test_deleting_an_unused_label_in_the_admin_removes_it(lead_client, project_a):
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    negative = Label.objects.get(project=project_a, name="negative")
    [index] = [i for i in range(2) if data[f"labels-{i}-id"] == negative.pk]
    data[f"labels-{index}-DELETE"] = "on"

    response = lead_client.post(change_url, data)

    assert response.status_code == 302
    assert response.url == _url("project_changelist")
    assert not Label.objects.filter(pk=negative.pk).exists()


def test_renaming_and_deleting_a_used_label_at_once_is_still_refused(lead_client, project_a):
    _annotate(project_a, "negative")
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    negative = Label.objects.get(project=project_a, name="negative")
    [index] = [i for i in range(2) if data[f"labels-{i}-id"] == negative.pk]
    data[f"labels-{index}-name"] = "unused-name"
    data[f"labels-{index}-DELETE"] = "on"

    response = lead_client.post(change_url, data, follow=True)

    assert "is used by 1 annotation;" in response.text
    assert Label.objects.get(pk=negative.pk).name == "negative"


def test_changing_overlap_in_the_admin_updates_is_complete_of_items(lead_client, project_a):
    project_a.overlap = 2
    project_a.save()
    for item in project_a.items.all():
        AnnotationFactory(item=item, value={"choices": ["positive"]})
    project_a.items.update(annotation_count=1, is_complete=False)
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    data["overlap"] = 1

    response = lead_client.post(change_url, data)

    assert response.status_code == 302
    project_a.refresh_from_db()
    assert project_a.overlap == 1
    assert list(project_a.items.values_list("is_complete", flat=True)) == [True, True]


def test_task_type_is_read_only_once_a_project_has_items(lead_client, project_a):
    response = lead_client.get(_url("project_change", project_a.pk))

    assert response.status_code == 200
    assert "task_type" not in response.context["adminform"].form.fields
    assert "overlap" in response.context["adminform"].form.fields


def test_removing_the_last_manager_in_the_admin_is_refused(lead_client, lead, project_a):
    # make_project's creator is a second manager; demote them first.
    Membership.objects.filter(project=project_a, role=Membership.Role.MANAGER).exclude(user=lead).update(
        role=Membership.Role.ANNOTATOR
    )
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    mine = Membership.objects.get(project=project_a, user=lead)
    [index] = [i for i in range(len(project_a.memberships.all())) if data[f"memberships-{i}-id"] == mine.pk]
    data[f"memberships-{index}-DELETE"] = "on"

    response = lead_client.post(change_url, data, follow=True)

    assert response.redirect_chain == [(change_url, 302)]
    assert "A project needs at least one manager" in response.text
    assert Membership.objects.filter(pk=mine.pk).exists()


def test_adding_a_member_in_the_admin_gives_them_the_chosen_role(lead_client, project_a):
    newcomer = UserFactory(username="newcomer")
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    index = data["memberships-TOTAL_FORMS"]
    data.update(
        {
            "memberships-TOTAL_FORMS": index + 1,
            f"memberships-{index}-user": newcomer.pk,
            f"memberships-{index}-role": Membership.Role.REVIEWER,
        }
    )

    response = lead_client.post(change_url, data)

    assert response.status_code == 302
    assert Membership.objects.get(project=project_a, user=newcomer).role == Membership.Role.REVIEWER


def test_creating_a_project_in_the_admin_makes_the_creator_a_manager(lead_client, lead):
    data = {
        "name": "Made In Admin",
        "instructions": "",
        "task_type": Project.TaskType.TEXT_CLASSIFICATION,
        "overlap": 2,
        "lease_seconds": 600,
        "training_min_labels": 10,
        "retrain_every": 0,
        "sampling_strategy": "margin",
        "consensus_method": "majority",
        "consensus_every": 0,
        "gold_share": 0,
        "random_share": 0.1,
        "text_model": "ngrams",
        "training_params": "{}",
        "labels-TOTAL_FORMS": 1,
        "labels-INITIAL_FORMS": 0,
        "labels-0-name": "spam",
        "labels-0-colour": "#112233",
        "labels-0-hotkey": "x",
        "labels-0-order": 0,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }

    response = lead_client.post(_url("project_add"), data)

    assert response.status_code == 302
    project = Project.objects.get(name="Made In Admin")
    assert (project.created_by, project.overlap) == (lead, 2)
    assert Membership.objects.get(project=project, user=lead).role == Membership.Role.MANAGER
    assert list(project.labels.values_list("name", "hotkey")) == [("spam", "x")]
    assert "Made In Admin" in lead_client.get(_url("project_changelist")).text


# Items ----------------------------------------------------------------------------------


def test_queue_counters_are_read_only_in_the_item_form(lead_client, project_a):
    item = project_a.items.first()
    Item.objects.filter(pk=item.pk).update(annotation_count=1, lease_count=1, is_complete=True)
    change_url = _url("item_change", item.pk)
    page = lead_client.get(change_url)
    data = _form_data(page)
    data.update({"priority": 5, "annotation_count": 99, "lease_count": 99, "is_complete": ""})

    response = lead_client.post(change_url, data)

    form_fields = page.context["adminform"].form.fields
    assert not {"annotation_count", "lease_count", "is_complete", "project"} & set(form_fields)
    assert 'name="annotation_count"' not in page.text
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.priority, item.annotation_count, item.lease_count, item.is_complete) == (5, 1, 1, True)


def test_item_page_shows_its_annotations_read_only(lead_client, project_a):
    item = project_a.items.first()
    AnnotationFactory(item=item, value={"choices": ["positive"]}, source="import-xyz")

    response = lead_client.get(_url("item_change", item.pk))

    [inline] = response.context["inline_admin_formsets"]
    assert response.status_code == 200
    assert "import-xyz" in response.text
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


# Gold items, the pause and reviews ------------------------------------------------------

POS = {"choices": ["positive"]}


def _label(project: Project, user, value: dict) -> Item:
    lease = assignment_next(project=project, annotator=user)
    annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value)
    return Item.objects.get(pk=lease.item.pk)


def _member_index(data: dict, membership: Membership) -> int:
    [index] = [
        i for i in range(data["memberships-TOTAL_FORMS"]) if data[f"memberships-{i}-id"] == membership.pk
    ]
    return index


def test_membership_inline_shows_gold_accuracy_read_only(lead_client, lead, project_a):
    annotator = UserFactory(username="goldie")
    membership = Membership.objects.create(project=project_a, user=annotator)
    Membership.objects.filter(pk=membership.pk).update(gold_answers=10, gold_correct=7)

    response = lead_client.get(_url("project_change", project_a.pk))

    inline = next(i for i in response.context["inline_admin_formsets"] if i.formset.model is Membership)
    assert response.status_code == 200
    assert "70% (7 of 10; 95% interval 40%–89%)" in response.text
    assert {"gold_answers", "gold_correct", "gold"}.isdisjoint(inline.formset.forms[0].fields)


def test_pausing_and_resuming_a_member_in_the_admin_goes_through_the_services(lead_client, project_a):
    annotator = UserFactory(username="pausable")
    membership = Membership.objects.create(project=project_a, user=annotator)
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    index = _member_index(data, membership)
    data[f"memberships-{index}-paused"] = "on"

    paused = lead_client.post(change_url, data)

    membership.refresh_from_db()
    assert paused.status_code == 302
    # membership_pause gives a reason when the lead left it empty: the annotator is always told why.
    assert (membership.paused, membership.paused_reason) == (True, "a lead paused you in this project")
    data = _form_data(lead_client.get(change_url))
    data.pop(f"memberships-{index}-paused")
    assert lead_client.post(change_url, data).status_code == 302
    membership.refresh_from_db()
    assert (membership.paused, membership.paused_reason) == (False, "")


def test_a_refused_demotion_in_the_admin_leaves_the_pause_as_it_was(lead_client, lead, project_a):
    Membership.objects.filter(project=project_a, role=Membership.Role.MANAGER).exclude(user=lead).update(
        role=Membership.Role.ANNOTATOR
    )
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    mine = Membership.objects.get(project=project_a, user=lead)
    index = _member_index(data, mine)
    data.update({f"memberships-{index}-role": "annotator", f"memberships-{index}-paused": "on"})

    response = lead_client.post(change_url, data, follow=True)

    mine.refresh_from_db()
    assert "A project needs at least one manager" in response.text
    assert (mine.role, mine.paused) == (Membership.Role.MANAGER, False)


def test_item_form_makes_an_item_gold_through_the_service(lead_client, project_a):
    item = project_a.items.first()
    change_url = _url("item_change", item.pk)
    data = _form_data(lead_client.get(change_url))
    data.update({"pick_kind": "gold", "gold_value": '{"choices": ["positive"]}'})

    response = lead_client.post(change_url, data)

    item.refresh_from_db()
    assert response.status_code == 302
    assert (item.pick_kind, item.gold_value, item.final_value, item.final_source, item.is_complete) == (
        "gold",
        POS,
        POS,
        "gold",
        True,
    )
    assert_kept_right(project_a)


def test_item_form_refuses_a_gold_value_with_an_unknown_label_and_changes_nothing(lead_client, project_a):
    item = project_a.items.first()
    change_url = _url("item_change", item.pk)
    data = _form_data(lead_client.get(change_url))
    data.update({"pick_kind": "gold", "gold_value": '{"choices": ["maybe"]}', "priority": 7})

    response = lead_client.post(change_url, data)

    item.refresh_from_db()
    assert response.status_code == 200
    assert "unknown label &#x27;maybe&#x27;" in str(response.context["adminform"].form.errors["gold_value"])
    assert (item.pick_kind, item.gold_value, item.final_source, item.priority) == ("queue", None, "none", 0.0)


@pytest.mark.parametrize(
    "pick_kind,gold_value,message",
    [("gold", "null", "needs its true value"), ("queue", '{"choices": ["positive"]}', "only a gold item")],
)
def test_item_form_refuses_gold_without_a_value_and_a_value_without_gold(
    lead_client, project_a, pick_kind, gold_value, message
):
    item = project_a.items.first()
    change_url = _url("item_change", item.pk)
    data = _form_data(lead_client.get(change_url))
    data.update({"pick_kind": pick_kind, "gold_value": gold_value})

    response = lead_client.post(change_url, data)

    item.refresh_from_db()
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors["gold_value"])
    assert (item.pick_kind, item.gold_value) == ("queue", None)


def test_item_form_makes_a_gold_item_ordinary_again(lead_client, project_a):
    item = project_a.items.first()
    item_gold_set(project=project_a, item_id=item.pk, value=POS)
    change_url = _url("item_change", item.pk)
    data = _form_data(lead_client.get(change_url))
    data["pick_kind"] = "queue"

    response = lead_client.post(change_url, data)

    item.refresh_from_db()
    assert response.status_code == 302
    assert (item.pick_kind, item.gold_value, item.final_source, item.is_complete) == (
        "queue",
        None,
        "none",
        False,
    )
    assert_kept_right(project_a)


def test_adding_a_gold_item_in_the_admin_makes_it_gold_through_the_service(lead_client, project_a):
    data = {
        "project": project_a.pk,
        "external_id": "new-gold",
        "text": "a sentence",
        "metadata": "{}",
        "priority": 0,
        "pick_kind": "gold",
        "gold_value": '{"choices": ["negative"]}',
        "annotations-TOTAL_FORMS": 0,
        "annotations-INITIAL_FORMS": 0,
    }

    response = lead_client.post(_url("item_add"), data)

    item = Item.objects.get(project=project_a, external_id="new-gold")
    assert response.status_code == 302
    assert (item.pick_kind, item.final_value, item.final_source) == (
        "gold",
        {"choices": ["negative"]},
        "gold",
    )
    assert_kept_right(project_a)


def test_gold_actions_mark_items_with_their_final_label_and_clear_them(lead_client, lead, project_b):
    # Overlap 2 and one answer each: items with a final label ("single") that are not complete.
    project = make_project(name="Gold Project", items=3, overlap=2, members=[(lead, Membership.Role.MANAGER)])
    annotator = UserFactory(username="labeler")
    Membership.objects.create(project=project, user=annotator)
    labeled = _label(project, annotator, POS)
    unlabeled = project.items.exclude(pk=labeled.pk).first()
    b_item = project_b.items.get()
    changelist = _url("item_changelist")
    selection = [labeled.pk, unlabeled.pk, b_item.pk]

    marked = lead_client.post(changelist, {"action": "mark_gold", "_selected_action": selection}, follow=True)

    labeled.refresh_from_db()
    assert (labeled.pick_kind, labeled.gold_value, labeled.final_source) == ("gold", POS, "gold")
    assert "1 item marked as gold." in marked.text
    assert "1 without a final label left as they were" in marked.text
    assert Item.objects.get(pk=unlabeled.pk).pick_kind == "queue"
    assert Item.objects.get(pk=b_item.pk).pick_kind == "queue"  # another project's item: out of reach
    assert_kept_right(project)

    cleared = lead_client.post(
        changelist, {"action": "clear_gold", "_selected_action": selection}, follow=True
    )

    labeled.refresh_from_db()
    assert "1 gold item made ordinary again." in cleared.text
    assert (labeled.pick_kind, labeled.final_value, labeled.final_source) == ("queue", POS, "single")
    assert_kept_right(project)


def test_marking_a_complete_item_gold_keeps_the_completed_day_tally_right(lead_client, project_a):
    annotator = UserFactory(username="completer")
    Membership.objects.create(project=project_a, user=annotator)
    labeled = _label(project_a, annotator, POS)  # overlap 1: complete

    lead_client.post(_url("item_changelist"), {"action": "mark_gold", "_selected_action": [labeled.pk]})

    assert Item.objects.get(pk=labeled.pk).final_source == "gold"
    assert_kept_right(project_a)


def test_deleting_items_in_the_admin_recounts_the_tallies(lead_client, project_a):
    annotator = UserFactory(username="deleted-work")
    Membership.objects.create(project=project_a, user=annotator)
    labeled = _label(project_a, annotator, POS)

    response = lead_client.post(
        _url("item_changelist"),
        {"action": "delete_selected", "_selected_action": [labeled.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Item.objects.filter(pk=labeled.pk).exists()
    assert_kept_right(project_a)


def test_item_page_lists_its_reviews_read_only(lead_client, lead, project_a):
    item = project_a.items.first()
    annotation = AnnotationFactory(item=item, annotator=UserFactory(username="answerer"), value=POS)
    Review.objects.create(
        project=project_a,
        item=item,
        reviewer=lead,
        decision=Review.Decision.REJECT,
        annotation=annotation,
        reason="<b>sloppy</b>",
        created_at=annotation.created_at,
    )

    response = lead_client.get(_url("item_change", item.pk))

    form_fields = response.context["adminform"].form.fields
    assert response.status_code == 200
    assert "Reject" in response.text
    assert "answerer" in response.text
    assert "&lt;b&gt;sloppy&lt;/b&gt;" in response.text  # escaped, not markup
    assert {"reviews", "final_value", "final_source"}.isdisjoint(form_fields)
    assert {"pick_kind", "gold_value"} <= set(form_fields)


def test_a_lead_turns_on_fetching_image_urls_in_the_admin(lead_client, project_a):
    change_url = _url("project_change", project_a.pk)
    data = _form_data(lead_client.get(change_url))
    assert "fetch_image_urls" not in data  # off by default
    data["fetch_image_urls"] = "on"

    response = lead_client.post(change_url, data)

    assert response.status_code == 302
    project_a.refresh_from_db()
    assert project_a.fetch_image_urls is True
