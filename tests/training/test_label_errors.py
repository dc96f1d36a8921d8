"""Suspicious labels inside a training run: out-of-fold fits (a spy backend proves no item is judged
by a model that saw it), cleanlab in one process, the items' review columns written and cleared,
and a digits check with labels flipped on purpose."""

import io
import itertools

import numpy as np
import pytest

from annotate import importing
from annotate.demo import digit_png, digits_arrays
from annotate.models import Item
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.training.projects import label_everything
from training.backends import BACKENDS
from training.backends.text import TextLogRegBackend
from training.label_errors import LabelIssues, label_issues_store
from training.versions import model_inputs, model_version_train

pytestmark = pytest.mark.django_db

GOOD = ["good", "great", "wonderful", "superb", "lovely", "delightful"]
BAD = ["bad", "awful", "terrible", "dreadful", "boring", "tedious"]


def _easy_reviews(n=100, *, flipped=(), overlap=1):
    """A text project of `n` unmistakable reviews (even: fresh, odd: rotten), each text unique,
    labeled by one annotator with the wrong label on the items whose index is in `flipped`.
    Returns (project, {index: item})."""
    user = UserFactory()
    project = make_project(labels=["fresh", "rotten"], members=[(user, "annotator")], overlap=overlap)
    rows = "id,text\n" + "".join(
        f"r{i},{' '.join((GOOD if i % 2 == 0 else BAD)[j % 6] for j in range(i, i + 3))} film {i}\n"
        for i in range(n)
    )
    importing.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="r.csv", text_column="text", id_column="id"
    )

    def label(item):
        i = int(item.external_id[1:])
        right = "fresh" if i % 2 == 0 else "rotten"
        return ({"fresh": "rotten", "rotten": "fresh"}[right]) if i in flipped else right

    label_everything(project, user, label)
    items = {int(item.external_id[1:]): item for item in Item.objects.filter(project=project)}
    return project, items


# The spy: which items each fit saw and which it was asked to predict --------------------------


class SpyBackend(TextLogRegBackend):
    """text_logreg that records, per instance, the feature rows it fits on and is asked to predict."""

    name = "spy"
    events: list = []
    instances = itertools.count()

    def __init__(self, **params):
        super().__init__(**params)
        self.spy_id, self.fitting = next(SpyBackend.instances), False

    def fit(self, X, Y, **kwargs):
        SpyBackend.events.append((self.spy_id, "fit", _row_keys(X)))
        self.fitting = True  # text_logreg predicts its own training rows for the training loss
        try:
            return super().fit(X, Y, **kwargs)
        finally:
            self.fitting = False

    def predict_proba(self, X):
        if not self.fitting:
            SpyBackend.events.append((self.spy_id, "predict", _row_keys(X)))
        return super().predict_proba(X)

    def save(self, directory):
        SpyBackend.events.append((self.spy_id, "save", []))
        return super().save(directory)


def _row_keys(X) -> list[bytes]:
    X = X.tocsr()
    return [
        X.indices[X.indptr[r] : X.indptr[r + 1]].tobytes() + X.data[X.indptr[r] : X.indptr[r + 1]].tobytes()
        for r in range(X.shape[0])
    ]


@pytest.fixture
def spy(monkeypatch):
    monkeypatch.setitem(BACKENDS, "spy", f"{__name__}:SpyBackend")
    SpyBackend.events = []
    return SpyBackend


def test_no_item_is_judged_by_a_fit_that_saw_it_and_the_version_is_fitted_once_on_all_labels(spy):
    project, items = _easy_reviews(100, flipped={3, 10})
    version = model_version_train(project=project, backend_name="spy")
    labeled = set(version.dataset.item_ids)
    X = model_inputs(project=project, backend=SpyBackend(), item_ids=sorted(labeled))
    item_of = dict(zip(_row_keys(X), sorted(labeled), strict=True))
    assert len(item_of) == len(labeled) == 100  # every item's row is its own

    seen_by: dict[int, set[int]] = {}
    judged: list[int] = []
    fits = []
    for instance, event, keys in spy.events:
        ids = [item_of[k] for k in keys]
        if event == "fit":
            assert instance not in seen_by, "a backend was fitted twice"
            seen_by[instance] = set(ids)
            fits.append((instance, set(ids)))
        elif event == "predict":
            assert not seen_by[instance] & set(ids), "an item was predicted by a fit that saw it"
            judged += ids
    # 5 fold fits, each predicting its own fold; every labeled item judged exactly once.
    assert sorted(judged) == sorted(labeled)
    assert len(fits) == 6
    # Then the version's model: one fit on every label, never asked about them, and the one saved.
    final, final_seen = fits[-1]
    assert final_seen == labeled
    assert [f for f, seen in fits if seen == labeled] == [final]
    assert (final, "save", []) in spy.events
    assert not any(i == final and e == "predict" for i, e, _ in spy.events)
    assert version.metrics["fit"]["n_samples"] == 100


def test_folds_are_fewer_when_a_class_has_fewer_items_and_stay_stratified():
    from training.evaluation import fold_assignments

    y = np.asarray([0] * 40 + [1] * 3)
    fold_of = fold_assignments(y, multi_label=False, folds=5, seed=0)
    assert set(fold_of.tolist()) == {0, 1, 2}
    assert all((y[fold_of == f] == 1).sum() == 1 for f in range(3))
    # A class's only item trains every fold and is judged by none; the folds follow the others.
    y = np.asarray([0] * 10 + [1] * 4 + [2])
    fold_of = fold_assignments(y, multi_label=False, folds=5, seed=0)
    assert fold_of[-1] == -1 and set(fold_of[:-1].tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="at least 2"):
        fold_assignments(np.asarray([0, 1, 2]), multi_label=False)


def test_a_class_with_one_label_trains_every_fold_model_and_is_judged_by_none(tmp_path, settings):
    from training.evaluation import TRAINED_ONLY
    from training.versions import model_version_train

    settings.MEDIA_ROOT = str(tmp_path)
    user = UserFactory()
    project = make_project(labels=["a", "b", "c"], items=13, members=[(user, "annotator")],
                           training_min_labels=2)  # fmt: skip
    names = {f"t{n}": "ab"[n % 2] for n in range(12)} | {"t12": "c"}
    label_everything(project, user, lambda item: names[item.external_id])
    version = model_version_train(project=project, created_by=user)
    c_item = project.items.get(external_id="t12")
    assert version.metrics["cv"]["trained_only"] == {"c": 1}
    assert version.metrics["classes_left_out"] == {}
    assert version.metrics["n_train"] == 13
    assert sum(version.metrics["cv"]["n_per_fold"]) == 12  # the "c" item is judged by no fold
    assert TRAINED_ONLY == -1 and c_item.suspicion is None and c_item.review_priority == 0.0
    assert version.dataset.classes == ["a", "b", "c"]
    # The version's model knows "c": it was fitted on every label.
    assert version.metrics["fit"]["n_samples"] == 13
    # The model card says so.
    from training.evaluation import labels_line
    from training.model_card import model_card

    assert labels_line(version.metrics).startswith("cross-validated on 12 of 13 labels")
    card = model_card(version=version)
    assert any(w.startswith("c has a single label") for w in card.warnings)
    # Macro-F1 is scikit-learn's over the classes the scored rows are or were predicted as: "c"
    # counts only if a fold model called a scored item "c".
    from sklearn.metrics import f1_score

    matrix = version.metrics["confusion_matrix"]
    pairs = [(i, j) for i, row in enumerate(matrix) for j, count in enumerate(row) for _ in range(count)]
    y_true, y_pred = zip(*pairs, strict=True)
    assert version.metrics["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    c_row = next(row for row in card.rows if row.name == "c")
    assert c_row.support == 0 and c_row.judged == any(row[2] for row in matrix)


# The columns ---------------------------------------------------------------------------------


def test_flagged_labels_get_suspicion_the_models_alternative_and_a_place_in_the_review_queue():
    flipped = {4, 11, 20, 33}
    project, items = _easy_reviews(100, flipped=flipped)
    # Arranged: one flipped item is gold, one was settled by a reviewer, one is not complete yet,
    # and one was left out of the review queue (none of them can be decided from the queue).
    Item.objects.filter(pk=items[4].pk).update(pick_kind="gold", review_state="none")
    Item.objects.filter(pk=items[11].pk).update(final_source="review", review_state="done")
    Item.objects.filter(pk=items[20].pk).update(is_complete=False, review_state="none")
    Item.objects.filter(pk=items[33].pk).update(review_state="none")
    version = model_version_train(project=project)

    rows = {
        r["id"]: r
        for r in Item.objects.filter(project=project).values(
            "id", "final_value", "suspicion", "suspect_value", "review_priority", "review_state"
        )
    }
    flagged = {i for i, item in items.items() if rows[item.pk]["suspicion"] is not None}
    assert flipped <= flagged and len(flagged) <= 10, flagged
    assert version.metrics["label_issues"]["flagged"] == len(flagged)
    for i in flipped:
        row = rows[items[i].pk]
        assert row["suspect_value"] == {"choices": ["fresh" if i % 2 == 0 else "rotten"]}
        assert row["suspect_value"] != row["final_value"]
        assert 0.5 < row["suspicion"] <= 1.0 and row["review_priority"] == row["suspicion"]
    assert rows[items[33].pk]["review_state"] == "queued"
    assert rows[items[4].pk]["review_state"] == "none"  # gold
    assert rows[items[11].pk]["review_state"] == "done"  # a reviewer's word stands
    assert rows[items[20].pk]["review_state"] == "none"  # not complete: cannot be decided yet
    # Every labeled item has the model's doubt as its review priority; the flipped ones come first.
    doubt = sorted(rows.values(), key=lambda r: -r["review_priority"])
    assert {r["id"] for r in doubt[: len(flipped)]} == {items[i].pk for i in flipped}
    unflagged = [rows[items[i].pk] for i in items if i not in flagged]
    assert all(r["suspicion"] is None and r["suspect_value"] is None for r in unflagged)
    assert all(0.0 <= r["review_priority"] < 0.5 for r in unflagged)


def test_a_later_run_clears_the_flags_of_labels_it_no_longer_doubts(django_capture_on_commit_callbacks):
    project, items = _easy_reviews(100, flipped={7})
    model_version_train(project=project)
    assert Item.objects.get(pk=items[7].pk).suspicion is not None
    # An older run's flags: on a label the model now trusts, and on an item with no label now.
    Item.objects.filter(pk=items[8].pk).update(suspicion=0.9, suspect_value={"choices": ["rotten"]})
    unlabeled = Item.objects.create(
        project=project, external_id="new", text="new", suspicion=0.8, suspect_value={"choices": ["x"]}
    )
    # The lead corrects item 7 (as a review would: its final value changes).
    Item.objects.filter(pk=items[7].pk).update(final_value={"choices": ["rotten"]}, final_source="review")
    model_version_train(project=project, seed=1)
    cleared = Item.objects.filter(pk__in=[items[7].pk, items[8].pk, unlabeled.pk])
    assert list(cleared.values_list("suspicion", "suspect_value")) == [(None, None)] * 3
    assert not Item.objects.filter(project=project, suspicion__isnull=False).exists()


def test_an_item_whose_label_changed_since_the_snapshot_gets_its_suspicion_cleared_and_nothing_else():
    project, items = _easy_reviews(10)
    a, b = items[0], items[1]  # fresh, rotten
    Item.objects.filter(pk__in=[a.pk, b.pk]).update(review_priority=0.25, review_state="none")
    Item.objects.filter(pk=b.pk).update(suspicion=0.7, suspect_value={"choices": ["fresh"]})
    issues = LabelIssues(
        quality=np.asarray([0.1, 0.2]),
        flagged=np.asarray([0, 1]),
        alternatives={0: {"choices": ["rotten"]}, 1: {"choices": ["fresh"]}},
    )
    # The model judged b as "fresh", but its final label is "rotten" now.
    label_issues_store(
        project=project, item_ids=[a.pk, b.pk], values=[{"choices": ["fresh"]}, {"choices": ["fresh"]}],
        issues=issues,
    )  # fmt: skip
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.suspicion, a.review_priority) == pytest.approx((0.9, 0.9))
    assert (a.suspect_value, a.review_state) == ({"choices": ["rotten"]}, "queued")
    assert (b.suspicion, b.suspect_value, b.review_priority, b.review_state) == (None, None, 0.25, "none")


# cleanlab in one process -----------------------------------------------------------------------


def test_cleanlab_runs_with_n_jobs_1_and_never_starts_a_process_pool(monkeypatch):
    import multiprocessing

    import cleanlab.filter

    calls = []
    real = cleanlab.filter.find_label_issues

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    def no_pool(*args, **kwargs):
        raise AssertionError("cleanlab started a process pool")

    monkeypatch.setattr(cleanlab.filter, "find_label_issues", spy)
    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    monkeypatch.setattr(cleanlab.filter.multiprocessing, "Pool", no_pool)
    project, _ = _easy_reviews(60, flipped={5})
    model_version_train(project=project)
    assert [(c["n_jobs"], c["return_indices_ranked_by"]) for c in calls] == [(1, "self_confidence")]


def test_a_multi_label_project_gets_its_label_issues_from_cleanlabs_multi_label_variant(monkeypatch):
    import cleanlab.multilabel_classification.filter as multilabel

    calls = []
    real = multilabel.find_label_issues
    monkeypatch.setattr(multilabel, "find_label_issues", lambda *a, **k: calls.append(k) or real(*a, **k))
    user = UserFactory()
    project = make_project(labels=["funny", "sad", "long"], members=[(user, "annotator")], multi_label=True)
    words = {"funny": "hilarious joke laugh", "sad": "tears grief sorrow", "long": "endless hours slow"}
    wanted = {}
    rows = "id,text\n"
    for i in range(90):
        choices = [name for j, name in enumerate(words) if (i >> j) & 1] or ["long"]
        wanted[f"m{i}"] = choices
        rows += f"m{i},{' '.join(words[c] for c in choices)} number {i}\n"
    wanted["m5"] = ["sad"]  # its text is funny and long
    importing.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="m.csv", text_column="text", id_column="id"
    )
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        value = {"choices": wanted[lease.item.external_id]}
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value)
    version = model_version_train(project=project)
    assert [c["n_jobs"] for c in calls] == [1]
    assert version.metrics["cv"]["stratified"] is False and version.metrics["cv"]["folds"] == 5
    odd = Item.objects.get(project=project, external_id="m5")
    assert odd.suspicion is not None and odd.suspect_value == {"choices": ["funny", "long"]}
    doubt = Item.objects.filter(project=project).order_by("-review_priority", "id")[0]
    assert doubt == odd


# Quality: flipped digits are found -------------------------------------------------------------


def test_digits_with_ten_percent_of_labels_flipped_are_found_among_the_most_doubted():
    import torch

    torch.set_num_threads(1)
    n = 300
    user = UserFactory()
    project = make_project(
        task_type="image_classification", labels=[str(d) for d in range(10)], members=[(user, "annotator")]
    )
    pixels, targets = digits_arrays()
    importing.import_images(
        project=project, files=[(f"d{i}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(n)]
    )
    rng = np.random.default_rng(13)
    flipped = set(rng.choice(n, size=n // 10, replace=False).tolist())
    wrong = {i: (int(targets[i]) + int(rng.integers(1, 10))) % 10 for i in flipped}

    def label(item):
        i = int(item.external_id[1:-4])
        return str(wrong.get(i, targets[i]))

    label_everything(project, user, label)
    model_version_train(project=project, params={"device": "cpu"})
    ranked = list(
        Item.objects.filter(project=project)
        .order_by("-review_priority", "id")
        .values_list("external_id", flat=True)
    )
    doubted = {int(name[1:-4]) for name in ranked[: 2 * len(flipped)]}
    recall = len(doubted & flipped) / len(flipped)
    assert recall >= 0.8, recall


# Inside a training run -------------------------------------------------------------------------


def _run(project, capture):
    from training.runs import training_run_request

    with capture():
        run, _ = training_run_request(project=project, trigger="test")
    return run


def _phases_recorded(monkeypatch, on_update=None) -> list[tuple[str, int]]:
    """The (phase, progress) pairs the run announces, in order; `on_update(run_id, phase, progress)`
    runs after each."""
    import training.runs

    seen, real = [], training.runs._run_update

    def update(run_id, **fields):
        done = real(run_id, **fields)
        if "phase" in fields and "progress" in fields:
            seen.append((fields["phase"], fields["progress"]))
            if on_update is not None:
                on_update(run_id, fields["phase"], fields["progress"])
        return done

    monkeypatch.setattr(training.runs, "_run_update", update)
    return seen


def test_a_run_shows_cross_validation_fold_by_fold_then_the_label_issues_on_its_progress_bar(
    monkeypatch, django_capture_on_commit_callbacks
):
    from training.runs import training_run_execute

    project, items = _easy_reviews(100, flipped={9})
    run = _run(project, django_capture_on_commit_callbacks)
    seen = _phases_recorded(monkeypatch)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded"
    phases = [phase for phase, _ in seen]
    assert phases.count("cross-validate") == 1 + 5  # announced, then after each fold
    assert list(dict.fromkeys(phases)) == [
        "snapshot", "load", "cross-validate", "evaluate", "label issues", "fit", "store", "trained", "done",
    ]  # fmt: skip
    progress = [p for _, p in seen]
    assert progress == sorted(progress)
    assert Item.objects.get(pk=items[9].pk).suspicion is not None


def test_a_run_cancelled_between_folds_stops_there_and_leaves_the_active_version(
    monkeypatch, django_capture_on_commit_callbacks
):
    from training.models import ModelVersion, TrainingRun
    from training.runs import training_run_execute

    project, items = _easy_reviews(100, flipped={9})
    active = model_version_train(project=project)
    Item.objects.filter(project=project).update(suspicion=None, suspect_value=None)
    run = _run(project, django_capture_on_commit_callbacks)
    folds = []

    def cancel_after_two_folds(run_id, phase, progress):
        if phase == "cross-validate":
            folds.append(progress)
            if len(folds) == 3:  # announced, then two folds done
                TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)

    _phases_recorded(monkeypatch, cancel_after_two_folds)
    run = training_run_execute(run_id=run.pk)
    assert (run.status, run.phase) == ("cancelled", "cancelled")
    assert len(folds) == 3
    assert list(ModelVersion.objects.filter(project=project)) == [active]
    active.refresh_from_db()
    assert active.is_active
    assert not Item.objects.filter(project=project, suspicion__isnull=False).exists()


def test_a_failure_in_the_label_issues_phase_fails_the_run_and_leaves_the_active_version(
    monkeypatch, django_capture_on_commit_callbacks
):
    import training.label_errors
    from training.models import ModelVersion
    from training.runs import training_run_execute

    project, _ = _easy_reviews(100, flipped={9})
    active = model_version_train(project=project)
    run = _run(project, django_capture_on_commit_callbacks)

    def broken(**kwargs):
        raise ValueError("pred_probs must sum to 1")

    monkeypatch.setattr(training.label_errors, "label_issues_find", broken)
    with pytest.raises(ValueError):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "pred_probs must sum to 1" in run.error
    assert list(ModelVersion.objects.filter(project=project)) == [active]
    active.refresh_from_db()
    assert active.is_active
