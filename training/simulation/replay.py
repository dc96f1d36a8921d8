"""One replay: a fresh project labeled through the studio's own loop, scored on held-out items.

Inside the sandbox (training/simulation/sandbox.py). Per repeat the source is split once into a
pool and a held-out test split (stratified by class, seeded by the repeat); the test items live
in a project of their own that nothing labels or scores. Per strategy, a fresh project of the
pool's items, imported in the chosen order, is labeled the way annotators label it: the queue
(annotate.queue.assignment_next) serves the seed set, each item is submitted with its known
label (annotation_submit), then rounds of train (training.versions.model_version_train: the
k-fold fits, the final fit on all labels; the label-issue phase only with
settings.label_issues), score the pool
(training.scoring.prediction_pool_score, the project's strategy), activate, evaluate the
active version on the test split, and serve the next batch, until the budget is spent.
"""

import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from annotate.models import Membership, Project
from training.simulation.sources import Source


@dataclass
class Point:
    n_labels: int
    score: float | None  # None: no model yet (the note says why)
    note: str = ""
    seconds: float = 0.0  # this round's train, score and evaluate


@dataclass
class Curve:
    strategy: str
    repeat: int
    full_score: float
    points: list[Point] = field(default_factory=list)
    seconds: float = 0.0
    backend: str = ""  # what the versions were: text_logreg, text_encoder, image_cnn, span_crf


@dataclass(frozen=True)
class Settings:
    seed_size: int
    batch: int
    budget: int
    order: str = "source"  # source | sorted | shuffled
    test_share: float = 0.2
    random_share: float | None = None  # None: the project's default
    folds: int = 0  # 0: no k-fold fits (model_version_train)
    label_issues: bool = False  # the trainings' label-issue phase (and random-sampling curve)
    text_model: str = "ngrams"  # text classification: the projects' text model (ngrams | encoder)


@dataclass(frozen=True)
class Split:
    repeat: int
    pool: list[int]  # source indices, in import order
    test: list[int]
    test_project: Project
    test_ids: list[int]  # item ids of the test project, in `test` order


Log = Callable[[str], None]


def _seed_everything(seed: int) -> None:
    """Seed the generators the loop draws from: the queue's gold and random-slice draws, the
    import's random priorities, and the strategies' (their tests seed them the same way)."""
    from annotate import queue, queue_order
    from annotate.importing import writer

    random.seed(seed)
    np.random.seed(seed % 2**32)
    for generator in (queue._random, queue_order._slice_random, writer._priorities):
        generator.seed(seed)


def split_make(*, source: Source, repeat: int, settings: Settings, user) -> Split:
    """The repeat's pool (in import order) and its test split, stored as a project of its own."""
    from sklearn.model_selection import train_test_split

    keys = [source.class_key(i) for i in range(len(source.values))]
    index = np.arange(len(keys))
    counts = {k: keys.count(k) for k in set(keys)}
    stratify = keys if min(counts.values()) >= 2 else None
    pool, test = train_test_split(
        index, test_size=settings.test_share, random_state=repeat, stratify=stratify
    )
    pool = sorted(int(i) for i in pool)
    if settings.order == "sorted":
        # A file sorted by class: stable, so each class keeps its source order.
        pool.sort(key=lambda i: keys[i])
    elif settings.order == "shuffled":
        random.Random(repeat).shuffle(pool)
    test = sorted(int(i) for i in test)
    project = _project_new(source=source, name=f"test split, repeat {repeat}", user=user, settings=settings)
    ids = _items_import(project=project, source=source, indices=test)
    return Split(repeat=repeat, pool=pool, test=test, test_project=project, test_ids=ids)


def _project_new(*, source: Source, name: str, user, settings: Settings, strategy: str = "margin") -> Project:
    from annotate.projects import project_create

    fields = {"sampling_strategy": strategy, "training_min_labels": source.training_min_labels}
    if settings.random_share is not None:
        fields["random_share"] = settings.random_share
    if source.task_type == Project.TaskType.TEXT_CLASSIFICATION:
        fields["text_model"] = settings.text_model
    return project_create(
        name=f"simulation: {source.name}, {name}", task_type=source.task_type, created_by=user,
        labels=list(source.classes), multi_label=source.multi_label, **fields,
    )  # fmt: skip


def _items_import(*, project: Project, source: Source, indices: list[int]) -> list[int]:
    """Import the items at `indices` in that order (no labels); their item ids, in that order."""
    from annotate.importing import import_images, import_records

    if source.images is not None:
        files = [
            (f"{n:06d}-{source.external_ids[i].replace('/', '_')}".removesuffix(source.image_suffixes[i])
             + source.image_suffixes[i], io.BytesIO(source.images[i]))
            for n, i in enumerate(indices)
        ]  # fmt: skip
        import_images(project=project, files=files)
    else:
        import_records(
            project=project,
            records=[{"text": source.texts[i], "external_id": f"{n:06d}"} for n, i in enumerate(indices)],
        )
    by_position = dict(project.items.values_list("external_id", "id"))
    return [by_position[name] for name in sorted(by_position)]


def replay(
    *,
    source: Source,
    split: Split,
    strategy: str,
    settings: Settings,
    user,
    log: Log,
    full: float | None = None,
) -> Curve:
    """Label a fresh project of the split's pool with `strategy` up to the budget; its curve.
    `full` is the repeat's full-data score when known already; otherwise it is measured here."""
    from annotate.queue import annotation_submit, assignment_next
    from training.datasets import NotEnoughLabels
    from training.scoring import prediction_pool_score
    from training.versions import model_version_activate, model_version_train

    started = time.perf_counter()
    _seed_everything(split.repeat)
    project = _project_new(
        source=source,
        name=f"{strategy}, repeat {split.repeat}",
        user=user,
        settings=settings,
        strategy=strategy,
    )
    item_ids = _items_import(project=project, source=source, indices=split.pool)
    known = {item_id: source.values[i] for item_id, i in zip(item_ids, split.pool, strict=True)}
    membership = Membership.objects.get(project=project, user=user)
    label_names = list(source.classes)
    curve = Curve(strategy=strategy, repeat=split.repeat, full_score=float("nan"))
    budget = min(settings.budget, len(item_ids))
    labeled = 0

    def serve(count: int) -> int:
        served = 0
        while served < count:
            # Read the project's row as each request does: the queue's state on it (the random
            # slice open or closed) changes as items are scored, marked and labeled.
            project.refresh_from_db()
            lease = assignment_next(project=project, annotator=user, membership=membership)
            if lease is None:
                break
            annotation_submit(
                project=project, item_id=lease.item.pk, annotator=user, value=known[lease.item.pk],
                membership=membership, label_names=label_names,
            )  # fmt: skip
            served += 1
        return served

    labeled += serve(min(settings.seed_size, budget))
    while True:
        round_started = time.perf_counter()
        try:
            version = model_version_train(
                project=project,
                seed=split.repeat,
                folds=settings.folds,
                activate=False,
                diagnostics=settings.label_issues,
            )
        except NotEnoughLabels as exc:
            curve.points.append(Point(n_labels=labeled, score=None, note=str(exc)))
        else:
            curve.backend = version.backend
            prediction_pool_score(version=version)
            model_version_activate(version=version)
            score = version_score(version=version, source=source, split=split)
            curve.points.append(Point(n_labels=labeled, score=score))
        last = curve.points[-1]
        last.seconds = round(time.perf_counter() - round_started, 2)
        shown = f"{last.score:.3f}" if last.score is not None else "no model yet"
        order = version.metrics.get("queue_order", {}) if last.score is not None else {}
        warm = ""
        if order.get("warm_up"):  # sampled at random while the model settles (training/scoring.py)
            kappa = order["kappa"]
            warm = ", warm-up (no version before)" if kappa is None else f", warm-up (κ {kappa:.2f})"
        log(
            f"  {strategy} repeat {split.repeat}: {labeled} labels, {source.measure} {shown},"
            f" {last.seconds:.1f} s{warm}"
        )
        if labeled >= budget:
            break
        added = serve(min(settings.batch, budget - labeled))
        if not added:
            break
        labeled += added
    if full is None:
        full = full_score(project=project, source=source, split=split, item_ids=item_ids)
        log(f"  repeat {split.repeat}: full-data {source.measure} {full:.3f} ({len(item_ids)} labels)")
    curve.full_score = full
    curve.seconds = time.perf_counter() - started
    return curve


def _predict(backend, X, *, source: Source, truth: list[dict], classes: list[str], n_train: int) -> float:
    from training.evaluation import evaluate, evaluate_spans

    if source.is_spans:
        from training.backends.spans import spans_to_tags

        predicted = backend.predict_marginals(X)
        true_tags = [spans_to_tags(offsets, v["spans"])[0] for (_, offsets), v in zip(X, truth, strict=True)]
        return float(
            evaluate_spans(true_tags, [p.tags for p in predicted], classes=classes, n_train=n_train)["f1"]
        )
    y_true = [v["choices"] if source.multi_label else v["choices"][0] for v in truth]
    # A first model may know only the classes labeled so far: the others it never predicts.
    proba = np.zeros((len(truth), len(classes)))
    proba[:, [classes.index(c) for c in backend.classes]] = backend.predict_proba(X)
    return float(
        evaluate(y_true, proba, classes=classes, multi_label=source.multi_label, n_train=n_train)["accuracy"]
    )


def version_score(*, version, source: Source, split: Split) -> float:
    """The version's accuracy (entity F1 for spans) on the held-out test split."""
    from training.versions import model_inputs, model_version_backend

    backend = model_version_backend(version)
    X = model_inputs(project=split.test_project, backend=backend, item_ids=split.test_ids)
    truth = [source.values[i] for i in split.test]
    return _predict(backend, X, source=source, truth=truth, classes=source.classes,
                    n_train=len(version.dataset.item_ids))  # fmt: skip


def full_score(*, project: Project, source: Source, split: Split, item_ids: list[int]) -> float:
    """The score of the project's backend fitted on every pool item's known label, as the final
    fit of model_version_train fits it (same backend, parameters, inputs and seed)."""
    from training.backends import get_backend
    from training.versions import backend_for_project, model_inputs

    backend = get_backend(backend_for_project(project))(**project.training_params)
    X = model_inputs(project=project, backend=backend, item_ids=item_ids)
    values = [source.values[i] for i in split.pool]
    index = {name: n for n, name in enumerate(source.classes)}
    if source.is_spans:
        Y = [v["spans"] for v in values]
        backend.fit(X, Y, classes=source.classes, seed=split.repeat)
    elif source.multi_label:
        Y = np.zeros((len(values), len(index)), dtype=np.int8)
        for row, v in enumerate(values):
            Y[row, [index[c] for c in v["choices"]]] = 1
        backend.fit(X, Y, classes=source.classes, multi_label=True, seed=split.repeat)
    else:
        Y = np.asarray([index[v["choices"][0]] for v in values], dtype=np.int64)
        backend.fit(X, Y, classes=source.classes, multi_label=False, seed=split.repeat)
    X_test = model_inputs(project=split.test_project, backend=backend, item_ids=split.test_ids)
    truth = [source.values[i] for i in split.test]
    return _predict(backend, X_test, source=source, truth=truth, classes=source.classes, n_train=len(values))
