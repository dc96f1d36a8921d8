import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotate.models import Annotation, Label, Membership, Project
from annotate.projects import (
    label_create,
    label_delete,
    label_update,
    membership_remove,
    membership_update,
    project_create,
)
from annotate.queue import annotation_submit, assignment_next
from annotate.values import annotation_value_validate
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

LABELS = ["cat", "dog", "bird"]


@pytest.fixture
def single():
    return Project(task_type=Project.TaskType.IMAGE_CLASSIFICATION, multi_label=False)


@pytest.fixture
def multi():
    return Project(task_type=Project.TaskType.TEXT_CLASSIFICATION, multi_label=True)


def test_single_label_value_is_accepted(single):
    value = annotation_value_validate(project=single, label_names=LABELS, value={"choices": ["dog"]})
    assert value == {"choices": ["dog"]}


def test_multi_label_value_is_normalised_to_label_order(multi):
    value = annotation_value_validate(project=multi, label_names=LABELS, value={"choices": ["bird", "cat"]})
    assert value == {"choices": ["cat", "bird"]}


def test_multi_label_value_may_choose_no_label(multi):
    assert annotation_value_validate(project=multi, label_names=LABELS, value={"choices": []}) == {
        "choices": []
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"choices": ["horse"]}, "unknown label 'horse'; this project's labels are: cat, dog, bird"),
        ({"choices": ["cat", "dog"]}, "single-label: choose exactly one label, not 2"),
        ({"choices": []}, "single-label: choose exactly one label, not 0"),
        ({"choices": "cat"}, '"choices" must be a list'),
        ({"choices": [1]}, '"choices" must be a list'),
        (["cat"], 'exactly one key, "choices"'),
        ({"choices": ["cat"], "extra": 1}, 'exactly one key, "choices"'),
        (None, 'exactly one key, "choices"'),
    ],
)
def test_single_label_rejects_bad_values_naming_the_problem(single, value, message):
    with pytest.raises(ValidationError) as excinfo:
        annotation_value_validate(project=single, label_names=LABELS, value=value)
    assert message in str(excinfo.value.message_dict["value"])


def test_multi_label_rejects_a_repeated_label(multi):
    with pytest.raises(ValidationError, match="lists a label twice"):
        annotation_value_validate(project=multi, label_names=LABELS, value={"choices": ["cat", "cat"]})


def test_project_create_gives_labels_hotkeys_in_order_and_makes_creator_manager():
    creator = UserFactory()
    project = project_create(
        name="p", task_type="text_classification", created_by=creator, labels=list("abcdefghijkl")
    )
    hotkeys = list(project.labels.order_by("order").values_list("hotkey", flat=True))
    assert hotkeys == list("1234567890qw")
    assert Membership.objects.get(project=project, user=creator).role == "manager"


def test_label_names_are_unique_within_a_project():
    project = make_project(labels=["a"])
    with pytest.raises(ValidationError, match="a label with this name already exists"):
        label_create(project=project, name="a")


def test_label_hotkeys_are_unique_within_a_project_at_the_database_too():
    project = make_project(labels=["a", "b"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.filter(project=project, name="b").update(hotkey="1")


def _annotate(project, user, choice):
    lease = assignment_next(project=project, annotator=user)
    return annotation_submit(
        project=project, item_id=lease.item.pk, annotator=user, value={"choices": [choice]}
    )


def test_renaming_a_label_keeps_its_annotations():
    user = UserFactory()
    project = make_project(labels=["pos", "neg"], items=3, members=[(user, "annotator")])
    _annotate(project, user, "pos")
    _annotate(project, user, "neg")
    label_update(label=project.labels.get(name="pos"), name="positive")
    values = sorted(tuple(a.value["choices"]) for a in Annotation.objects.filter(project=project))
    assert values == [("neg",), ("positive",)]
    _annotate(project, user, "positive")


def test_renaming_a_label_touches_no_other_project():
    user = UserFactory()
    one = make_project(labels=["pos", "neg"], items=1, members=[(user, "annotator")])
    two = make_project(labels=["pos", "neg"], items=1, members=[(user, "annotator")])
    _annotate(one, user, "pos")
    _annotate(two, user, "pos")
    label_update(label=one.labels.get(name="pos"), name="positive")
    assert Annotation.objects.get(project=two).value == {"choices": ["pos"]}


def test_deleting_a_label_in_use_is_refused_with_the_count():
    user = UserFactory()
    project = make_project(labels=["pos", "neg"], items=3, members=[(user, "annotator")])
    _annotate(project, user, "pos")
    _annotate(project, user, "pos")
    with pytest.raises(ValidationError, match="'pos' is used by 2 annotations"):
        label_delete(label=project.labels.get(name="pos"))
    assert project.labels.filter(name="pos").exists()


def test_deleting_an_unused_label_works():
    user = UserFactory()
    project = make_project(labels=["pos", "neg"], items=1, members=[(user, "annotator")])
    _annotate(project, user, "pos")
    label_delete(label=project.labels.get(name="neg"))
    assert list(project.labels.values_list("name", flat=True)) == ["pos"]


def test_the_last_manager_cannot_be_demoted_or_removed():
    project = make_project()
    manager = project.memberships.get(role="manager")
    with pytest.raises(ValidationError, match="at least one manager"):
        membership_update(membership=manager, role="annotator")
    with pytest.raises(ValidationError, match="at least one manager"):
        membership_remove(membership=manager)
