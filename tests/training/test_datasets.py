import pytest

from annotate.items import item_create_bulk
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from training.datasets import (
    NotEnoughLabels,
    dataset_snapshot_create,
    final_labels,
    is_validation,
    item_hash,
)

pytestmark = pytest.mark.django_db


def _label_all(project, user, choose):
    """Label every item `user` is given; `choose(item)` returns the label name."""
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": [choose(lease.item)]}
        )


def _labeled_project(n=40, labels=("pos", "neg"), **fields):
    user = UserFactory()
    fields.setdefault("training_min_labels", 2)
    project = make_project(labels=labels, items=n, members=[(user, "annotator")], **fields)
    _label_all(project, user, lambda item: labels[item.pk % len(labels)])
    return project, user


def test_the_split_is_the_same_on_every_run_and_as_items_are_added():
    project, user = _labeled_project(n=60)
    first = dataset_snapshot_create(project=project)
    again = dataset_snapshot_create(project=project)
    assert again.pk == first.pk  # an identical snapshot is reused: runs are idempotent per snapshot
    item_create_bulk(
        project=project, rows=[{"external_id": f"new{i}", "text": f"new {i}"} for i in range(40)]
    )
    _label_all(project, user, lambda item: "pos" if item.pk % 2 else "neg")
    grown = dataset_snapshot_create(project=project)
    assert grown.pk != first.pk
    old_validation = set(first.validation_ids) - set(first.lent.values())
    new_validation = set(grown.validation_ids) - set(grown.lent.values())
    assert old_validation == {i for i in new_validation if i in set(first.item_ids)}
    assert all(is_validation(project.salt, i) for i in new_validation)


def test_about_a_fifth_of_items_fall_on_the_validation_side():
    salt = "fixed-salt"
    share = sum(is_validation(salt, i) for i in range(1, 5001)) / 5000
    assert 0.18 < share < 0.22


def test_a_class_without_a_validation_item_lends_its_smallest_hash_item_for_that_run_only():
    user = UserFactory()
    project = make_project(
        labels=["common", "rare"], items=30, members=[(user, "annotator")], training_min_labels=2
    )
    items = list(project.items.order_by("id"))
    rare = [i for i in items if not is_validation(project.salt, i.pk)][:2]
    _label_all(project, user, lambda item: "rare" if item in rare else "common")
    snapshot = dataset_snapshot_create(project=project)
    expected = min((i.pk for i in rare), key=lambda pk: item_hash(project.salt, pk))
    assert snapshot.lent == {"rare": expected}
    assert expected in snapshot.validation_ids
    assert not is_validation(project.salt, expected)


def test_too_few_labels_per_class_is_a_clear_message():
    user = UserFactory()
    project = make_project(
        labels=["a", "b", "c"], items=5, members=[(user, "annotator")], training_min_labels=1
    )
    _label_all(project, user, lambda item: "a" if item.external_id != "t0" else "b")
    with pytest.raises(NotEnoughLabels) as refused:
        dataset_snapshot_create(project=project)
    assert str(refused.value) == (
        "not enough labels yet: at least 2 labels need 2 labeled items each to train a first model"
        " ('a' has 4, 'b' has 1, 'c' has 0); 1 more label of the labels short of 2 would do"
    )


def test_a_first_model_trains_with_the_classes_that_have_labels_and_names_the_others():
    user = UserFactory()
    project = make_project(
        labels=["a", "b", "c", "d"], items=9, members=[(user, "annotator")], training_min_labels=2
    )
    names = {"t0": "a", "t1": "a", "t2": "a", "t3": "b", "t4": "b", "t5": "c"}
    _label_all(project, user, lambda item: names.get(item.external_id, "a"))
    snapshot = dataset_snapshot_create(project=project)
    # "c" has one label: it trains (its item is judged by no fold); "d" has none and is left out.
    assert snapshot.classes == ["a", "b", "c"]
    assert snapshot.classes_left_out == {"d": 0}
    c_item = project.items.get(external_id="t5").pk
    assert c_item in snapshot.item_ids
    assert {v["choices"][0] for v in snapshot.values} == {"a", "b", "c"}
    # Reused, the snapshot still says what is left out.
    assert dataset_snapshot_create(project=project).classes_left_out == {"d": 0}


def test_multi_label_leaves_an_unlabeled_class_out_and_trains_a_single_one():
    user = UserFactory()
    project = make_project(
        labels=["x", "y", "z", "w"], items=4, multi_label=True, members=[(user, "annotator")],
        training_min_labels=2,
    )  # fmt: skip
    choices = {"t0": ["x", "z"], "t1": ["x", "y"], "t2": ["y"], "t3": []}
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user,
            value={"choices": choices[lease.item.external_id]},
        )  # fmt: skip
    snapshot = dataset_snapshot_create(project=project)
    assert snapshot.classes == ["x", "y", "z"] and snapshot.classes_left_out == {"w": 0}
    by_item = dict(zip(snapshot.item_ids, snapshot.values, strict=True))
    assert by_item[project.items.get(external_id="t0").pk] == {"choices": ["x", "z"]}


def test_fewer_labels_than_the_project_minimum_is_a_clear_message():
    project, _ = _labeled_project(n=8, training_min_labels=50)
    with pytest.raises(
        NotEnoughLabels, match="not enough labels yet: 8 labeled items, this project trains from 50"
    ):
        dataset_snapshot_create(project=project)


def test_final_label_is_the_majority_of_counted_votes_and_ties_are_left_out():
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    project = make_project(
        labels=["x", "y"], items=2, overlap=3, members=[(u, "annotator") for u in (a, b, c)]
    )
    votes = {a: ["x", "x"], b: ["x", "y"], c: ["y", "x"]}
    for user, choices in votes.items():
        for choice in choices:
            lease = assignment_next(project=project, annotator=user)
            annotation_submit(
                project=project, item_id=lease.item.pk, annotator=user, value={"choices": [choice]}
            )
    labels = final_labels(project=project)
    first, second = project.items.order_by("id")
    assert dict(zip(labels.item_ids, labels.values, strict=True)) == {
        first.pk: {"choices": ["x"]},
        second.pk: {"choices": ["x"]},
    }
    # A tie (one x, one y on a two-vote item) has no final label.
    tied = make_project(labels=["x", "y"], items=1, overlap=2, members=[(u, "annotator") for u in (a, b)])
    for user, choice in ((a, "x"), (b, "y")):
        lease = assignment_next(project=tied, annotator=user)
        annotation_submit(project=tied, item_id=lease.item.pk, annotator=user, value={"choices": [choice]})
    assert final_labels(project=tied).item_ids == []
    assert tied.items.get().final_source == "tie"


def test_multi_label_final_label_keeps_labels_chosen_by_more_than_half():
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    project = make_project(
        labels=["x", "y", "z"],
        items=1,
        overlap=3,
        multi_label=True,
        members=[(u, "annotator") for u in (a, b, c)],
    )
    for user, choices in {a: ["x", "y"], b: ["x"], c: ["x", "z"]}.items():
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value={"choices": choices})
    assert final_labels(project=project).values == [{"choices": ["x"]}]
