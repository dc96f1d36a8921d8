"""Pool scoring: predict every item still in the queue with a version, store the predictions and
rewrite the items' priorities, so the queue serves the least certain item first.

Text spans: the span CRF's proposal is its spans ({"spans": [...]}, `probabilities` each
span's confidence in that order, `score` the confidence of its least sure token), and the
priority is strategies.sequence_scores over the token marginals (the least certain token).

Margin + diversity ("margin_diversity"): the batches write margins; then the most uncertain
candidates of the whole pool are clustered on the model's own inputs (hashed n-grams, pixels;
hashed n-grams of the text for spans) and written as ranks interleaved across the clusters
(strategies.margin_diversity). While some label has too few labels for the version to know it
(training/datasets.py trains with the classes that have 2), the pool is ordered this way whatever
the project's strategy, so the queue goes looking for the missing classes (`scoring_strategy`).

Warm-up: uncertainty is worth following only once the model is stable enough for its doubts to
mean something. Until two consecutive versions' predictions on the pool agree κ ≥ KAPPA_WARM_UP
(Cohen's kappa, the stopping advice's measure, training/proposals.py), a single-label
classification project samples its pool at random whatever its strategy; from the first version
that reaches it on, the strategy orders the pool. On Rotten Tomatoes margin from the start fell
up to 1.6 points below random sampling between 40 and 180 labels: it followed the doubts of models
that changed half their answers from one version to the next (bench/README.md, "Warm-up").
The version's metrics["queue_order"] say which order its pool got, and why.

Called by training runs (training/runs.py) once a version is trained, and again when an older
version is activated (a rollback), so the order and the proposals always come from the same model.
"""

import json
from collections.abc import Callable

from django.db import connection, transaction

from annotate.models import Item, Label, Project
from annotate.queue import queue_reordering, random_slice_redraw
from training.features import PoolTextFeatures
from training.models import ModelVersion, Prediction
from training.proposals import pool_agreement_store
from training.versions import model_inputs, model_version_backend, span_documents

# Uncertainty orders the pool from the first version whose predictions agree this much with the
# previous version's (Cohen's kappa); random sampling before. 0.8 is where Landis and Koch's
# "almost perfect" agreement begins; on Rotten Tomatoes it was passed between 120 and 200 labels.
# 0 turns the warm-up off.
KAPPA_WARM_UP = 0.8
UNCERTAINTY_STRATEGIES = ("margin", "margin_diversity", "least_confidence", "entropy")
# The batch the diversity step spreads over clusters when the project does not retrain every N.
DIVERSITY_BATCH = 20
DIVERSITY_BATCH_MAX = 200


def scoring_strategy(*, project: Project, version: ModelVersion) -> str:
    """The strategy that orders the pool: margin_diversity while the version lacks some of the
    project's labels (too few labels to train them), the project's own strategy otherwise. A
    project that samples at random does so throughout (it is the baseline)."""
    if project.sampling_strategy != "random" and project.task_type != Project.TaskType.TEXT_SPANS:
        names = set(Label.objects.filter(project=project).values_list("name", flat=True))
        if names - set(version.dataset.classes):
            return "margin_diversity"
    return project.sampling_strategy


def warm_up_over(*, version: ModelVersion, kappa: float | None) -> bool:
    """Whether the warm-up is over for this version: its predictions agree κ ≥ KAPPA_WARM_UP with
    the previous version's, or an earlier version's did (once over, it stays over)."""
    if KAPPA_WARM_UP <= 0 or (kappa is not None and kappa >= KAPPA_WARM_UP):
        return True
    return ModelVersion.objects.filter(
        project_id=version.project_id,
        number__lt=version.number,
        metrics__pool_agreement__kappa__gte=KAPPA_WARM_UP,
    ).exists()


def _warms_up(*, project: Project, version: ModelVersion, strategy: str) -> bool:
    """Whether the warm-up applies to this project and strategy at all: the project's own
    uncertainty strategy on single-label classification (spans and multi-label sets rarely agree
    as whole values). While a label is missing from the version the queue goes looking for it
    (scoring_strategy's margin_diversity), warm-up or not."""
    return (
        strategy == project.sampling_strategy
        and strategy in UNCERTAINTY_STRATEGIES
        and project.task_type != Project.TaskType.TEXT_SPANS
        and not version.dataset.multi_label
    )


def queue_order_text(metrics: dict) -> str | None:
    """How a version's pool was ordered, in words (metrics["queue_order"]); None before scoring."""
    order = metrics.get("queue_order")
    if not order:
        return None
    if not order.get("warm_up"):
        return f"queue order: {order['strategy']}"
    kappa = order.get("kappa")
    agreement = (
        "no version before it" if kappa is None else f"\u03ba = {kappa:.2f} with the version before it"
    )
    return (
        f"queue order: random while the model settles ({agreement}; the strategy orders it from"
        f" \u03ba \u2265 {order['kappa_needed']:.2f})"
    )


def diversity_batch(*, project: Project) -> int:
    """How many items the diversity step spreads over clusters: the labels between retrains."""
    return min(project.retrain_every or DIVERSITY_BATCH, DIVERSITY_BATCH_MAX)


def prediction_pool_score(
    *, version: ModelVersion, batch_size: int = 2000, progress: Callable[[int, int], None] | None = None
) -> int:
    """Predict every item still in the queue, store the proposals and set each item's priority.

    Works in keyset batches of `batch_size` items, so memory stays flat whatever the pool size.
    Priority is the sampling strategy's score (scoring_strategy; margin by default): the queue
    then serves the least certain item first with no change to its query. With margin_diversity
    a last step reorders the most uncertain candidates of the whole pool (_diversity_rerank).
    During the warm-up (the module's docstring) the priorities are then rewritten at random.
    """
    project = version.project
    backend = model_version_backend(version)
    pool = Item.objects.filter(project=project, is_complete=False)
    total = pool.count()
    strategy = scoring_strategy(project=project, version=version)
    # Once an earlier version ended the warm-up, nothing of it runs: no ids kept, no second write.
    warms_up = _warms_up(project=project, version=version, strategy=strategy) and not warm_up_over(
        version=version, kappa=None
    )
    # Annotators' bookmarks assume the order stands: none is used or written meanwhile.
    with queue_reordering(project_id=project.pk):
        # Text classification reads the cached feature rows once for both steps below.
        pool_features = (
            PoolTextFeatures(project=project, featurizer=backend.featurizer)
            if project.task_type == Project.TaskType.TEXT_CLASSIFICATION
            else None
        )
        done, ids, uncertainty = _pool_score_batches(
            pool, version=version, backend=backend, strategy=strategy, batch_size=batch_size,
            total=total, progress=progress, pool_features=pool_features, keep_ids=warms_up,
        )  # fmt: skip
        # The stopping advice's kappa, measured once here rather than on every view of the page;
        # the warm-up reads it too.
        kappa = pool_agreement_store(version=version)
        order = {"strategy": strategy, "warm_up": False}
        if warms_up and (kappa is None or kappa < KAPPA_WARM_UP):  # earlier versions: checked above
            order = {"strategy": "random", "warm_up": True, "kappa": kappa, "kappa_needed": KAPPA_WARM_UP}
            item_priorities_write(ids=ids, priorities=_random_priorities(version, len(ids)))
        elif strategy == "margin_diversity" and ids:
            _diversity_rerank(
                version=version,
                backend=backend,
                ids=ids,
                uncertainty=uncertainty,
                pool_features=pool_features,
            )
        if pool_features is not None:
            pool_features.save()
        # The random slice is drawn afresh from the pool this version scored (annotate/queue_order.py).
        random_slice_redraw(project_id=project.pk)
        _items_analyze()
    version.metrics = {**version.metrics, "queue_order": order}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return done


def _random_priorities(version: ModelVersion, n: int) -> list[float]:
    import numpy as np

    return np.random.default_rng([version.project_id, version.number]).random(n).tolist()


def _diversity_rerank(
    *, version: ModelVersion, backend, ids: list[int], uncertainty: list[float], pool_features
) -> None:
    """Write the pool's most uncertain candidates as ranks interleaved across k-means clusters of
    the model's inputs (strategies.margin_diversity's batch step), above every other margin."""
    import numpy as np

    from training.strategies import cluster_interleave, diversity_prefilter_size, most_uncertain, rank_scores

    project = version.project
    batch = diversity_batch(project=project)
    scores = np.asarray(uncertainty, dtype=np.float64)
    candidates = most_uncertain(scores, diversity_prefilter_size(batch))
    chosen = [ids[i] for i in candidates]
    order = cluster_interleave(
        _diversity_features(project=project, backend=backend, item_ids=chosen, pool_features=pool_features),
        clusters=batch, priority=scores[candidates], seed=version.number,
    )  # fmt: skip
    ranks = rank_scores(order, len(chosen))
    item_priorities_write(ids=chosen, priorities=ranks.tolist())


def _diversity_features(*, project: Project, backend, item_ids: list[int], pool_features):
    """The model's own inputs of these items, for clustering: pixels, or hashed n-grams of the text."""
    if project.is_image:
        return model_inputs(project=project, backend=backend, item_ids=item_ids)
    texts = dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "text"))
    if pool_features is None:  # spans: the n-gram featurizer over the texts
        from training.backends.text import TextFeaturizer

        return TextFeaturizer().featurize([texts[i] for i in item_ids])
    return pool_features.rows(item_ids, [texts[i] for i in item_ids])


def _items_analyze() -> None:
    """Refresh the planner's statistics of the items table after a rewrite of its priorities.

    Autovacuum is off on the machines this runs on, and with stale statistics PostgreSQL plans
    the next-item query badly: measured on a fresh 10,000-item project, p50 193 ms before
    ANALYZE and 5.6 ms after. SQLite plans from its indexes alone.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Item._meta.db_table)}")


def _pool_score_batches(
    pool, *, version, backend, strategy, batch_size, total, progress, pool_features, keep_ids=False
):
    """Score the pool in keyset batches: (items done, their ids and uncertainties, in id order;
    the lists are filled for margin_diversity, the ids also with `keep_ids`)."""
    from training.strategies import proposals, scores, sequence_scores

    project = version.project
    classes = version.dataset.classes
    multi_label = version.dataset.multi_label
    # margin_diversity's per-item score is margin (tokens' margins for spans).
    per_item = "margin" if strategy == "margin_diversity" else strategy
    done, last_id = 0, 0
    all_ids: list[int] = []
    all_uncertainty: list[float] = []
    while True:
        batch = list(pool.filter(id__gt=last_id).order_by("id").values_list("id", "text")[:batch_size])
        if not batch:
            break
        ids = [item_id for item_id, _ in batch]
        # "random" draws afresh in each batch: one seed for all drew the same sequence in each.
        seed = [version.number, ids[0]]
        last_id = ids[-1]
        if project.task_type == Project.TaskType.TEXT_SPANS:
            predicted = backend.predict_marginals(span_documents([text for _, text in batch]))
            marginals = [p.marginals for p in predicted]
            values = [{"spans": p.spans} for p in predicted]
            proba = [p.confidence for p in predicted]
            confidence = 1.0 - sequence_scores("least_confidence", marginals)
            uncertainty = sequence_scores(per_item, marginals, seed=seed)
        else:
            if project.is_image:
                X = model_inputs(project=project, backend=backend, item_ids=ids)
            else:
                X = pool_features.rows(ids, [text for _, text in batch])
            proba = backend.predict_proba(X)
            values, confidence = proposals(proba, classes, multi_label=multi_label)
            uncertainty = scores(per_item, proba, multi_label=multi_label, seed=seed)
        _predictions_store(version, ids, values, proba, confidence, uncertainty)
        if strategy == "margin_diversity":
            all_ids += ids
            all_uncertainty += [float(u) for u in uncertainty]
        elif keep_ids:
            all_ids += ids
        done += len(ids)
        if progress is not None:
            progress(done, total)
    return done, all_ids, all_uncertainty


def _predictions_store(version, ids, values, proba, confidence, uncertainty) -> None:
    """Upsert one batch's predictions and write the items' priorities.

    On PostgreSQL each is one statement over arrays (unnest): Django's bulk_update builds a
    CASE of one branch per row, which cost 20 s of Python for a 100,000-item pool.
    """
    probabilities = [json.dumps([round(float(p), 5) for p in row]) for row in proba]
    rows = (
        [int(i) for i in ids],
        [json.dumps(v) for v in values],
        probabilities,
        [float(c) for c in confidence],
        [float(u) for u in uncertainty],
    )
    prediction_table = Prediction._meta.db_table
    columns = "item_id, model_version_id, value, probabilities, score, uncertainty"
    insert = f"INSERT INTO {prediction_table} ({columns})"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                insert
                + " SELECT v.item_id, %s, v.value::jsonb, v.probabilities::jsonb, v.score, v.uncertainty"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::float8[])"
                " AS v(item_id, value, probabilities, score, uncertainty)"
                " ON CONFLICT (item_id, model_version_id) DO UPDATE SET value = EXCLUDED.value,"
                " probabilities = EXCLUDED.probabilities, score = EXCLUDED.score,"
                " uncertainty = EXCLUDED.uncertainty",
                [version.pk, *rows],
            )
        else:
            cursor.executemany(
                insert
                + " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (item_id, model_version_id) DO UPDATE SET"
                " value = excluded.value, probabilities = excluded.probabilities, score = excluded.score,"
                " uncertainty = excluded.uncertainty",
                [(i, version.pk, v, p, c, u) for i, v, p, c, u in zip(*rows, strict=True)],
            )
        _priorities_update(cursor, rows[0], rows[4])


def item_priorities_write(
    *, ids: list[int], priorities: list[float], unless_scored: int | None = None
) -> int:
    """Set these items' priorities in one statement (PostgreSQL) or one executemany (SQLite).

    With `unless_scored=project_id`, nothing is written once the project has a model version
    (the cold start's seed set never overwrites a model's order): the test is part of the same
    statement, so a version stored before it runs is seen. Returns the rows updated.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        return _priorities_update(
            cursor, [int(i) for i in ids], [float(p) for p in priorities], unless_scored
        )


def _priorities_update(cursor, ids, priorities, unless_scored: int | None = None) -> int:
    item_table, version_table = Item._meta.db_table, ModelVersion._meta.db_table
    guard, extra = "", []
    if unless_scored is not None:
        guard, extra = (
            f" AND NOT EXISTS (SELECT 1 FROM {version_table} WHERE project_id = %s)",
            [unless_scored],
        )
    if connection.vendor == "postgresql":
        cursor.execute(
            f"UPDATE {item_table} AS i SET priority = v.priority"
            f" FROM unnest(%s::bigint[], %s::float8[]) AS v(id, priority) WHERE i.id = v.id{guard}",
            [ids, priorities, *extra],
        )
        return cursor.rowcount
    cursor.executemany(
        f"UPDATE {item_table} SET priority = %s WHERE id = %s{guard}",
        [(p, i, *extra) for i, p in zip(ids, priorities, strict=True)],
    )
    return cursor.rowcount
