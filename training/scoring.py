"""Pool scoring: predict every item still in the queue with a version, store the predictions and
rewrite the items' priorities, so the queue serves the least certain item first.

Text spans: the span CRF's proposal is its spans ({"spans": [...]}, `probabilities` each
span's confidence in that order, `score` the confidence of its least sure token), and the
priority is strategies.sequence_scores over the token marginals (the least certain token).

Called by training runs (training/runs.py) once a version is trained, and again when an older
version is activated (a rollback), so the order and the proposals always come from the same model.
"""

import json
from collections.abc import Callable

from django.db import connection, transaction

from annotate.models import Item, Project
from annotate.queue import queue_reordering
from training.models import ModelVersion, Prediction
from training.versions import model_inputs, model_version_backend, span_documents


def prediction_pool_score(
    *, version: ModelVersion, batch_size: int = 2000, progress: Callable[[int, int], None] | None = None
) -> int:
    """Predict every item still in the queue, store the proposals and set each item's priority.

    Works in keyset batches of `batch_size` items, so memory stays flat whatever the pool size.
    Priority is the project's sampling strategy score (margin by default): the queue then
    serves the least certain item first with no change to its query.
    """
    project = version.project
    backend = model_version_backend(version)
    pool = Item.objects.filter(project=project, is_complete=False)
    total = pool.count()
    # Annotators' bookmarks assume the order stands: none is used or written meanwhile.
    with queue_reordering(project_id=project.pk):
        done = _pool_score_batches(pool, version=version, backend=backend, batch_size=batch_size,
                                   total=total, progress=progress)  # fmt: skip
        _items_analyze()
    return done


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


def _pool_score_batches(pool, *, version, backend, batch_size, total, progress) -> int:
    from training.strategies import proposals, scores, sequence_scores

    project = version.project
    classes = version.dataset.classes
    multi_label = version.dataset.multi_label
    done, last_id = 0, 0
    while True:
        batch = list(pool.filter(id__gt=last_id).order_by("id").values_list("id", "text")[:batch_size])
        if not batch:
            break
        ids = [item_id for item_id, _ in batch]
        last_id = ids[-1]
        if project.task_type == Project.TaskType.TEXT_SPANS:
            predicted = backend.predict_marginals(span_documents([text for _, text in batch]))
            marginals = [p.marginals for p in predicted]
            values = [{"spans": p.spans} for p in predicted]
            proba = [p.confidence for p in predicted]
            confidence = 1.0 - sequence_scores("least_confidence", marginals)
            uncertainty = sequence_scores(project.sampling_strategy, marginals, seed=version.number)
        else:
            if project.is_image:
                X = model_inputs(project=project, backend=backend, item_ids=ids)
            else:
                # The pool is scored once per run: hash its texts directly rather than grow the cache.
                X = backend.featurize([text for _, text in batch])
            proba = backend.predict_proba(X)
            values, confidence = proposals(proba, classes, multi_label=multi_label)
            uncertainty = scores(
                project.sampling_strategy, proba, multi_label=multi_label, seed=version.number
            )
        _predictions_store(version, ids, values, proba, confidence, uncertainty)
        done += len(ids)
        if progress is not None:
            progress(done, total)
    return done


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
    prediction_table, item_table = Prediction._meta.db_table, Item._meta.db_table
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
            cursor.execute(
                f"UPDATE {item_table} AS i SET priority = v.priority"
                " FROM unnest(%s::bigint[], %s::float8[]) AS v(id, priority) WHERE i.id = v.id",
                [rows[0], rows[4]],
            )
        else:
            cursor.executemany(
                insert
                + " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (item_id, model_version_id) DO UPDATE SET"
                " value = excluded.value, probabilities = excluded.probabilities, score = excluded.score,"
                " uncertainty = excluded.uncertainty",
                [(i, version.pk, v, p, c, u) for i, v, p, c, u in zip(*rows, strict=True)],
            )
            cursor.executemany(
                f"UPDATE {item_table} SET priority = %s WHERE id = %s",
                list(zip(rows[4], rows[0], strict=True)),
            )
