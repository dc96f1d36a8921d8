"""Dawid–Skene consensus: the EM estimate itself, and the recompute service that applies it.

The simulated annotators are the issue's: 500 items, 4 classes, one annotator 95% accurate and
two 60% accurate (errors uniform over the other classes), all three on every item, seeded.
"""

import threading
from collections import Counter

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from annotate import tasks
from annotate.api import serializers as s
from annotate.gold import item_gold_set
from annotate.items import item_create_bulk
from annotate.models import Annotation, FinalSource, Item, Membership, Project
from annotate.projects import project_update
from annotate.quality import recompute
from annotate.quality.consensus import final_of
from annotate.quality.dawid_skene import confusion_prior, dawid_skene
from annotate.quality.finals import final_tallies
from annotate.quality.recompute import (
    project_consensus_auto_request,
    project_consensus_recompute,
    project_consensus_request,
)
from annotate.quality.tallies import tallies_read
from annotate.queue import annotation_submit, assignment_next
from annotate.review import review_decide
from tests.factories import UserFactory, make_project

SEED = 2024
CLASSES = ("a", "b", "c", "d")
ACCURACIES = (0.95, 0.6, 0.6)


def _simulate(*, seed=SEED, n_items=500, n_classes=4, accuracies=ACCURACIES):
    """(truth, labels): each annotator right with their accuracy, else uniform over the others."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    labels = np.empty((n_items, len(accuracies)), dtype=np.int64)
    for j, accuracy in enumerate(accuracies):
        right = rng.random(n_items) < accuracy
        wrong = (truth + rng.integers(1, n_classes, n_items)) % n_classes
        labels[:, j] = np.where(right, truth, wrong)
    return truth, labels


def _majority(labels, n_classes, *, rng=None):
    """The majority class per item; a tie is no decision (-1), or a coin flip with `rng`."""
    votes = np.zeros((labels.shape[0], n_classes))
    for j in range(labels.shape[1]):
        np.add.at(votes, (np.arange(labels.shape[0]), labels[:, j]), 1)
    top = votes == votes.max(axis=1, keepdims=True)
    if rng is not None:
        return np.array([rng.choice(np.flatnonzero(row)) for row in top])
    return np.where(top.sum(axis=1) > 1, -1, votes.argmax(axis=1))


# The estimate ------------------------------------------------------------------------------


def test_dawid_skene_beats_majority_vote_by_five_points_on_the_simulated_annotators():
    truth, labels = _simulate()
    result = dawid_skene(labels, 4)
    ds_accuracy = float(np.mean(result.decision == truth))
    majority_accuracy = float(np.mean(_majority(labels, 4) == truth))
    coin_flip_accuracy = float(np.mean(_majority(labels, 4, rng=np.random.default_rng(SEED)) == truth))
    assert result.converged
    assert ds_accuracy >= majority_accuracy + 0.05
    # Also against majority vote whose ties are broken by a coin, not left undecided.
    assert ds_accuracy > coin_flip_accuracy
    # The reliable annotator is found to be the reliable one.
    diagonals = [float(np.trace(m)) / 4 for m in result.confusion]
    assert diagonals[0] > max(diagonals[1:]) + 0.1
    assert np.allclose(result.posterior.sum(axis=1), 1) and np.isclose(result.priors.sum(), 1)


def test_dawid_skene_learns_an_annotator_who_always_swaps_two_classes():
    # Annotator 2 answers "b" for every "a" and "a" for every "b": a consistent confusion, as
    # informative as a right answer once measured. Majority vote is fooled on every item where
    # one of the two honest annotators slips; Dawid–Skene reads the swap back.
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, 400)
    honest = [np.where(rng.random(400) < 0.7, truth, (truth + rng.integers(1, 3, 400)) % 3) for _ in range(2)]
    swapped = np.choose(truth, [1, 0, 2])
    labels = np.stack([*honest, swapped], axis=1)
    result = dawid_skene(labels, 3)
    assert result.confusion[2, 0, 1] > 0.9 and result.confusion[2, 1, 0] > 0.9
    assert np.mean(result.decision == truth) > np.mean(_majority(labels, 3) == truth) + 0.1


def test_an_annotator_with_few_answers_gets_a_smoothed_matrix_not_a_degenerate_one():
    truth, labels = _simulate(n_items=200)
    newcomer = np.full((200, 1), -1)
    newcomer[:2, 0] = truth[:2]  # two answers, both right
    result = dawid_skene(np.hstack([labels, newcomer]), 4)
    matrix = result.confusion[3]
    assert np.allclose(matrix.sum(axis=1), 1)
    assert matrix.min() > 0.1 and matrix.max() < 0.6  # near the prior, not zeros and ones
    # Rows of classes they never (surely) saw stay at the prior: a little better than chance.
    unanswered = [k for k in range(4) if k not in truth[:2]]
    assert np.allclose(matrix[unanswered], confusion_prior(n_classes=4)[unanswered], atol=0.01)


def test_known_items_keep_their_truth_and_measure_the_annotators():
    truth, labels = _simulate(n_items=300)
    known = np.full(300, -1)
    known[:100] = truth[:100]
    known[0] = (truth[0] + 1) % 4  # a reviewer may overrule every annotator
    result = dawid_skene(labels, 4, known=known)
    assert np.array_equal(result.decision[:100], known[:100])
    assert np.allclose(result.posterior[0], np.eye(4)[known[0]])


def test_an_item_nobody_answered_follows_the_priors():
    labels = np.array([[0, 0], [1, 1], [0, 0], [-1, -1]])
    result = dawid_skene(labels, 2)
    assert np.allclose(result.posterior[3], result.priors)
    assert result.priors[0] > result.priors[1]


def test_no_answers_at_all_give_the_prior():
    result = dawid_skene(np.empty((0, 0), dtype=np.int64), 3)
    assert result.posterior.shape == (0, 3) and np.allclose(result.priors, 1 / 3)


def test_em_stops_after_max_iterations_and_says_it_did_not_converge():
    _, labels = _simulate(n_items=100)
    result = dawid_skene(labels, 4, max_iterations=1, tolerance=0.0)
    assert (result.iterations, result.converged) == (1, False)


@pytest.mark.parametrize(
    ("labels", "n_classes", "message"),
    [
        ([0, 1], 2, "matrix"),
        ([[0, 2]], 2, "classes must lie"),
        ([[0, -2]], 2, "classes must lie"),
        ([[0.5, 1.0]], 2, "integers"),
        ([[0]], 0, "n_classes"),
    ],
)
def test_dawid_skene_refuses_malformed_answers(labels, n_classes, message):
    with pytest.raises(ValueError, match=message):
        dawid_skene(np.array(labels), n_classes)


# The recompute through the real services -----------------------------------------------------


def _project(n_items, *, annotators=3, overlap=3, **fields):
    users = [UserFactory() for _ in range(annotators)]
    project = make_project(
        labels=CLASSES,
        items=n_items,
        overlap=overlap,
        members=[(u, Membership.Role.ANNOTATOR) for u in users],
        **fields,
    )
    return project, users


def _label_all(project, annotator, answer_of) -> int:
    """Label every item the queue serves `annotator`, answering answer_of(item); the count."""
    membership = Membership.objects.get(project=project, user=annotator)
    labelled = 0
    while (lease := assignment_next(project=project, annotator=annotator, membership=membership)) is not None:
        annotation_submit(
            project=project,
            item_id=lease.item.pk,
            annotator=annotator,
            value={"choices": [answer_of(lease.item)]},
            membership=membership,
            label_names=list(CLASSES),
        )
        labelled += 1
    return labelled


def _use_dawid_skene(project, **fields) -> None:
    project_update(project=project, consensus_method="dawid_skene", **fields)


def _tallies_recount(project) -> dict[str, dict[str, int]]:
    """What a rebuild counts for the final labels: each item's final value and source, as they are."""
    counted: Counter = Counter()
    for value, source in Item.objects.filter(project=project).values_list("final_value", "final_source"):
        counted.update(final_tallies(value, source))
    found: dict[str, dict[str, int]] = {"final_label": {}, "final_source": {}}
    for (kind, k), n in counted.items():
        if n:
            found[kind][k] = n
    return found


def _finals(project) -> dict[int, tuple]:
    return {i: (v, src) for i, v, src in project.items.values_list("id", "final_value", "final_source")}


def _accuracy(project, truth_of) -> float:
    items = list(project.items.all())
    return sum(
        (item.final_value or {}).get("choices") == [truth_of[item.external_id]] for item in items
    ) / len(items)


@pytest.mark.django_db
def test_recompute_through_the_queue_beats_majority_and_keeps_the_tallies_right():
    truth, labels = _simulate()
    project, users = _project(500)
    answers = {f"t{i}": [CLASSES[c] for c in labels[i]] for i in range(500)}
    truth_of = {f"t{i}": CLASSES[c] for i, c in enumerate(truth)}
    for j, user in enumerate(users):
        assert _label_all(project, user, lambda item, j=j: answers[item.external_id][j]) == 500
    majority_accuracy = _accuracy(project, truth_of)
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == _tallies_recount(
        project
    )
    _use_dawid_skene(project)

    result = project_consensus_recompute(project=project, batch_size=128)

    assert result.method == "dawid_skene" and result.converged and result.items_fitted == 500
    assert _accuracy(project, truth_of) >= majority_accuracy + 0.05
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == _tallies_recount(
        project
    )
    assert set(project.items.values_list("final_source", flat=True)) == {FinalSource.CONSENSUS}
    project.refresh_from_db()
    assert project.consensus_computed_at == result.computed_at is not None
    assert project.consensus_last_annotation_id == Annotation.objects.filter(project=project).latest("id").id


def _small_dawid_skene_project():
    """40 simulated items, overlap 3, one annotator always right and two right half the time:
    Dawid–Skene and majority vote differ on several items."""
    truth, labels = _simulate(seed=0, n_items=40, accuracies=(1.0, 0.5, 0.5))
    project, users = _project(40)
    for j, user in enumerate(users):
        _label_all(project, user, lambda item, j=j: CLASSES[labels[int(item.external_id[1:]), j]])
    _use_dawid_skene(project)
    return project, users, {f"t{i}": CLASSES[c] for i, c in enumerate(truth)}


def _tied(project) -> Item:
    """An item whose votes tie: Dawid–Skene is sure to rewrite it (a decision is a consensus)."""
    return project.items.filter(final_source=FinalSource.TIE).order_by("id").first()


@pytest.mark.django_db
def test_review_and_gold_items_are_untouched_by_the_recompute():
    project, users, truth_of = _small_dawid_skene_project()
    reviewer = UserFactory()
    Membership.objects.create(project=project, user=reviewer, role=Membership.Role.REVIEWER)
    reviewed, gold = project.items.get(external_id="t1"), project.items.get(external_id="t3")
    # Values Dawid–Skene would never give them: the recompute must leave them as they are.
    review_decide(
        project=project,
        item_id=reviewed.pk,
        reviewer=reviewer,
        decision="correct",
        supersedes=None,
        value={"choices": ["a"]},
    )
    item_gold_set(project=project, item_id=gold.pk, value={"choices": ["c"]})
    before = _finals(project)

    project_consensus_recompute(project=project)

    after = _finals(project)
    assert after[reviewed.pk] == before[reviewed.pk] == ({"choices": ["a"]}, FinalSource.REVIEW)
    assert after[gold.pk] == before[gold.pk] == ({"choices": ["c"]}, FinalSource.GOLD)
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == _tallies_recount(
        project
    )


@pytest.mark.django_db
def test_switching_back_to_majority_restores_the_majority_labels():
    project, _, _ = _small_dawid_skene_project()
    majority = _finals(project)
    tallies_before = tallies_read(project_id=project.pk, kinds=["final_label", "final_source"])
    assert project_consensus_recompute(project=project).items_changed > 0
    assert _finals(project) != majority
    project_update(project=project, consensus_method="majority")

    result = project_consensus_recompute(project=project)

    assert result.method == "majority" and result.items_changed > 0
    assert _finals(project) == majority
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == tallies_before
    project.refresh_from_db()
    assert project.consensus_computed_at is None
    # Each item's label is what final_of makes of its voters, as every submit keeps it.
    item = project.items.get(external_id="t0")
    votes = [a.value for a in Annotation.objects.filter(item=item, counted=True)]
    assert majority[item.pk] == final_of(votes=votes, multi_label=False, label_order=CLASSES)


@pytest.mark.django_db
def test_a_project_without_annotations_is_computed_with_nothing_changed():
    project, _ = _project(3)
    _use_dawid_skene(project)

    result = project_consensus_recompute(project=project)

    assert (result.method, result.items_changed, result.items_fitted) == ("dawid_skene", 0, 0)
    assert set(project.items.values_list("final_source", flat=True)) == {FinalSource.NONE}
    project.refresh_from_db()
    assert project.consensus_computed_at is not None


@pytest.mark.django_db
def test_with_majority_vote_the_recompute_does_nothing_and_says_so():
    project, users = _project(4, overlap=2, annotators=2)
    _label_all(project, users[0], lambda item: "a")
    _label_all(project, users[1], lambda item: "b")  # ties everywhere
    before = _finals(project)

    result = project_consensus_recompute(project=project)

    assert (result.method, result.items_changed) == ("majority", 0)
    assert "nothing to recompute" in result.detail
    assert _finals(project) == before
    assert project_consensus_request(project=project).queued is False


@pytest.mark.django_db
def test_dawid_skene_resolves_ties_as_a_consensus():
    project, users = _project(8, overlap=2, annotators=2)
    _label_all(project, users[0], lambda item: "a")
    _label_all(project, users[1], lambda item: "a" if int(item.external_id[1:]) < 6 else "b")
    assert project.items.filter(final_source=FinalSource.TIE).count() == 2
    _use_dawid_skene(project)

    project_consensus_recompute(project=project)

    assert not project.items.filter(final_source=FinalSource.TIE).exists()
    tied = project.items.filter(external_id__in=["t6", "t7"])
    assert {item.final_source for item in tied} == {FinalSource.CONSENSUS}
    assert all(item.final_value["choices"][0] in ("a", "b") for item in tied)


@pytest.mark.django_db
def test_multi_label_projects_keep_majority_vote():
    project, users = _project(2, overlap=1, annotators=1, multi_label=True)
    _label_all(project, users[0], lambda item: "a")
    # However it got there (the settings page and the API refuse it), the recompute keeps majority.
    Project.objects.filter(pk=project.pk).update(consensus_method="dawid_skene")
    before = _finals(project)

    result = project_consensus_recompute(project=project)

    assert result.method == "majority" and "single-label" in result.detail
    assert _finals(project) == before


@pytest.mark.django_db
def test_a_review_that_lands_between_listing_and_locking_is_never_overwritten(monkeypatch):
    project, _, _ = _small_dawid_skene_project()
    reviewer = UserFactory()
    Membership.objects.create(project=project, user=reviewer, role=Membership.Role.REVIEWER)
    target = _tied(project)
    original = recompute._rewrite_batch

    def review_first(**kwargs):
        if target.pk in kwargs["ids"]:
            review_decide(
                project=project,
                item_id=target.pk,
                reviewer=reviewer,
                decision="correct",
                supersedes=None,
                value={"choices": ["d"]},
            )
        return original(**kwargs)

    monkeypatch.setattr(recompute, "_rewrite_batch", review_first)
    project_consensus_recompute(project=project)

    target.refresh_from_db()
    assert (target.final_value, target.final_source) == ({"choices": ["d"]}, FinalSource.REVIEW)
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == _tallies_recount(
        project
    )


@pytest.mark.django_db
def test_votes_that_come_after_the_fit_are_weighed_in_their_batch(monkeypatch):
    project, users, _ = _small_dawid_skene_project()
    item_create_bulk(project=project, rows=[{"external_id": "late", "text": "a late item"}])
    target = project.items.get(external_id="late")
    _label_all(project, users[1], lambda item: "b")  # the fit sees this one vote only
    original = recompute._rewrite_batch

    def two_more_votes_first(**kwargs):
        if target.pk in kwargs["ids"]:
            _label_all(project, users[0], lambda item: "a")
            _label_all(project, users[2], lambda item: "a")
        return original(**kwargs)

    monkeypatch.setattr(recompute, "_rewrite_batch", two_more_votes_first)
    project_consensus_recompute(project=project)

    target.refresh_from_db()
    assert Annotation.objects.filter(item=target, counted=True).count() == 3
    assert (target.final_value, target.final_source) == ({"choices": ["a"]}, FinalSource.CONSENSUS)
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == _tallies_recount(
        project
    )


def _wait_until_blocked(thread) -> None:
    """Until `thread` waits for a lock this transaction holds (or is done). PostgreSQL says so in
    pg_stat_activity; SQLite does not, but its BEGIN IMMEDIATE waits for any writer anyway."""
    if connection.vendor != "postgresql":
        thread.join(0.3)
        return
    for _ in range(400):
        with connection.cursor() as cursor:
            # A transaction sees one snapshot of pg_stat_activity unless told to drop it.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] or not thread.is_alive():
                return
        thread.join(0.05)


@pytest.mark.django_db(transaction=True)
def test_a_review_decided_while_a_batch_holds_its_locks_waits_and_wins(monkeypatch):
    project, _, _ = _small_dawid_skene_project()
    reviewer = UserFactory()
    Membership.objects.create(project=project, user=reviewer, role=Membership.Role.REVIEWER)
    target = _tied(project)
    started, errors = threading.Event(), []

    def review():
        try:
            started.set()
            review_decide(
                project=project,
                item_id=target.pk,
                reviewer=reviewer,
                decision="correct",
                supersedes=None,
                value={"choices": ["d"]},
            )
        except Exception as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=review)
    original = recompute.posterior_of

    def posterior_with_a_review_waiting(**kwargs):
        # Called inside the batch's transaction, its rows locked: the review must wait for it.
        if not thread.is_alive() and not started.is_set():
            thread.start()
            started.wait()
            _wait_until_blocked(thread)
        return original(**kwargs)

    monkeypatch.setattr(recompute, "posterior_of", posterior_with_a_review_waiting)
    project_consensus_recompute(project=project)
    thread.join()

    assert not errors
    target.refresh_from_db()
    assert (target.final_value, target.final_source) == ({"choices": ["d"]}, FinalSource.REVIEW)
    assert tallies_read(project_id=project.pk, kinds=["final_label", "final_source"]) == _tallies_recount(
        project
    )


# The trigger, the task and the API -------------------------------------------------------------


@pytest.fixture
def dispatched(monkeypatch):
    """The project ids the recompute task was sent for (the broker is the edge)."""
    sent = []
    monkeypatch.setattr(
        tasks.project_consensus_recompute, "delay", lambda project_id: sent.append(project_id)
    )
    return sent


@pytest.mark.django_db
def test_the_trigger_queues_one_recompute_after_every_n_annotations(
    dispatched, django_capture_on_commit_callbacks
):
    project, users = _project(6, overlap=1, annotators=1)
    _use_dawid_skene(project, consensus_every=4)
    membership = Membership.objects.get(project=project, user=users[0])

    def submit_one():
        lease = assignment_next(project=project, annotator=users[0], membership=membership)
        with django_capture_on_commit_callbacks(execute=True):
            annotation_submit(
                project=project, item_id=lease.item.pk, annotator=users[0], value={"choices": ["a"]}
            )

    for _ in range(3):
        submit_one()
    assert dispatched == []
    submit_one()
    assert dispatched == [project.pk]
    fourth = Annotation.objects.filter(project=project).latest("id").id
    project.refresh_from_db()
    assert project.consensus_last_annotation_id == fourth  # claimed: the count starts again here
    submit_one()
    assert dispatched == [project.pk]
    assert project_consensus_auto_request(project=project) is False  # coalesced


@pytest.mark.django_db
def test_the_trigger_is_off_for_majority_projects_and_for_every_zero(dispatched):
    project, users = _project(2, overlap=1, annotators=1)
    _label_all(project, users[0], lambda item: "a")
    project_update(project=project, consensus_every=1)
    assert project_consensus_auto_request(project=project) is False
    _use_dawid_skene(project, consensus_every=0)
    assert project_consensus_auto_request(project=project) is False
    assert dispatched == []


@pytest.mark.django_db
def test_the_celery_task_runs_the_recompute(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    project, _, _ = _small_dawid_skene_project()

    tasks.project_consensus_recompute.apply(args=[project.pk]).get()
    tasks.project_consensus_recompute.apply(args=[project.pk + 1000]).get()  # gone: logged, no error

    project.refresh_from_db()
    assert project.consensus_computed_at is not None


def _recompute_url(project) -> str:
    return reverse("api:consensus-recompute", kwargs={"project_id": project.pk})


@pytest.mark.django_db
def test_a_manager_queues_a_recompute_on_demand(dispatched, django_capture_on_commit_callbacks):
    project, _ = _project(2, overlap=1, annotators=1)
    _use_dawid_skene(project)
    client = APIClient()
    client.force_authenticate(project.memberships.get(role=Membership.Role.MANAGER).user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_recompute_url(project))

    assert response.status_code == 202
    assert response.json()["queued"] is True and response.json()["consensus_method"] == "dawid_skene"
    assert dispatched == [project.pk]


@pytest.mark.django_db
def test_on_demand_with_majority_queues_nothing_and_says_so(dispatched):
    project, _ = _project(2, overlap=1, annotators=1)
    client = APIClient()
    client.force_authenticate(project.memberships.get(role=Membership.Role.MANAGER).user)

    response = client.post(_recompute_url(project))

    assert response.status_code == 200
    assert response.json()["queued"] is False and "nothing to recompute" in response.json()["detail"]
    assert dispatched == []


@pytest.mark.django_db
def test_only_managers_may_ask_for_a_recompute(dispatched):
    project, users = _project(2, overlap=1, annotators=1)
    client = APIClient()
    client.force_authenticate(users[0])
    assert client.post(_recompute_url(project)).status_code == 403
    client.force_authenticate(UserFactory())
    assert client.post(_recompute_url(project)).status_code == 404
    assert dispatched == []


# The project setting ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_multi_label_project_with_dawid_skene_is_refused_naming_the_field():
    client = APIClient()
    client.force_authenticate(UserFactory())
    body = {"name": "p", "labels": ["a", "b"], "multi_label": True, "consensus_method": "dawid_skene"}

    response = client.post(reverse("api:project-list"), body, format="json")

    assert response.status_code == 400
    assert "single-label" in response.json()["consensus_method"][0]
    assert not Project.objects.filter(name="p").exists()


@pytest.mark.django_db
def test_the_settings_serializer_checks_the_project_being_changed():
    multi = make_project(multi_label=True)
    refused = s.ProjectUpdateInput(
        data={"consensus_method": "dawid_skene"}, context={"project": multi}, partial=True
    )
    assert not refused.is_valid() and "consensus_method" in refused.errors
    single = make_project()
    project_update(project=single, consensus_method="dawid_skene")
    to_multi = s.ProjectUpdateInput(data={"multi_label": True}, context={"project": single}, partial=True)
    assert not to_multi.is_valid() and "multi_label" in to_multi.errors
    fine = s.ProjectUpdateInput(
        data={"consensus_method": "dawid_skene", "consensus_every": 500},
        context={"project": single},
        partial=True,
    )
    assert fine.is_valid(), fine.errors
    for bad in ({"consensus_every": -1}, {"consensus_method": "mode"}):
        data = s.ProjectUpdateInput(data=bad, partial=True)
        assert not data.is_valid() and set(data.errors) == set(bad)
