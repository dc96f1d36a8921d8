"""Suspicious labels: the items whose final label the model doubts, found by cleanlab on out-of-fold
probabilities and written to the columns the review queue reads.

A training run fits the project's backend once per fold (training/versions.py), so that every
labeled item has class probabilities from a model that never saw it. cleanlab's confident
learning (`find_label_issues`, ranked by self-confidence) flags the items whose label those
probabilities contradict; `get_label_quality_scores` (self-confidence: the probability the model
gives the item's own label) scores every item. Then, per labeled item, in one UPDATE per batch:

- `review_priority` = 1 − quality, for every labeled item: the review queue serves what the model
  doubts first (after the disagreements);
- `suspicion` = 1 − quality and `suspect_value` = the model's alternative, for the flagged items;
  cleared on every other item of the project, so an older run's flags do not linger;
- `review_state` = queued for a flagged item a reviewer can decide: complete, not a gold item
  (its true value is the lead's, and showing it in review would announce it), and not already
  settled by a review (the same doubt would put it back after every retrain).

An item whose final label changed since the snapshot was read (a submit or a review meanwhile) is
written nothing but a cleared suspicion: the model judged a label it no longer has.

Text spans (span_issues_find): the same columns from the CRF's out-of-fold token marginals,
judged per entity; see its docstring.

cleanlab is imported only here, inside the functions (it takes about a second to import). Every
call passes n_jobs=1: without it cleanlab forks a process pool, inside the Celery worker.
"""

import json
import logging
from dataclasses import dataclass, field

import numpy as np
from django.db import connection, transaction

from annotate.models import FinalSource, Item, PickKind, Project, ReviewState

logger = logging.getLogger(__name__)

# A multi-label item's alternative: every class the model gives at least this probability.
MULTI_LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class LabelIssues:
    """What cleanlab made of a snapshot's labels, row for row with the snapshot's items."""

    quality: np.ndarray  # (n,) label quality score, 0–1: lower is more doubtful
    flagged: np.ndarray  # row indices find_label_issues returned, most doubtful first
    alternatives: dict[int, dict] = field(default_factory=dict)  # flagged row → {"choices": [...]}
    method: str = "cleanlab find_label_issues (self_confidence) on out-of-fold probabilities"
    counts: dict = field(default_factory=dict)  # more JSON-safe counts for the summary

    @property
    def doubt(self) -> np.ndarray:
        """1 − quality: what review_priority and suspicion hold (higher is reviewed sooner)."""
        return 1.0 - self.quality

    def summary(self) -> dict:
        """JSON-safe counts for the version's metrics."""
        return {
            "method": self.method,
            "labels": int(len(self.quality)),
            "flagged": int(len(self.flagged)),
            **self.counts,
        }


def label_issues_find(
    *, labels: np.ndarray, proba: np.ndarray, classes: list[str], multi_label: bool
) -> LabelIssues:
    """Flag and score the labels against out-of-fold probabilities (cleanlab, one process).

    `labels`: class indices (n,) for single-label, a 0/1 matrix (n, k) for multi-label, as the
    backends take them; `proba`: (n, k) out-of-fold probabilities in `classes` order.
    """
    labels, proba = np.asarray(labels), np.asarray(proba, dtype=np.float64)
    if multi_label:
        from cleanlab.multilabel_classification.filter import find_label_issues
        from cleanlab.multilabel_classification.rank import get_label_quality_scores

        given = [np.flatnonzero(row).tolist() for row in labels]
    else:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        given = labels.astype(np.int64)
    flagged = np.asarray(
        find_label_issues(given, proba, return_indices_ranked_by="self_confidence", n_jobs=1),
        dtype=np.int64,
    )
    quality = np.clip(np.asarray(get_label_quality_scores(given, proba), dtype=np.float64), 0.0, 1.0)
    return LabelIssues(
        quality=quality,
        flagged=flagged,
        alternatives={
            int(row): _alternative(proba[row], labels[row], classes, multi_label) for row in flagged
        },
    )


def _alternative(p: np.ndarray, label, classes: list[str], multi_label: bool) -> dict:
    """The model's value for a flagged item: its most likely class, or for multi-label every class
    at MULTI_LABEL_THRESHOLD or above. A single-label item the model still rates most likely as
    labeled (confident learning can flag it against a class's own threshold) gets the runner-up:
    the review page shows an alternative, not the label itself again."""
    if multi_label:
        return {"choices": [classes[j] for j in np.flatnonzero(p >= MULTI_LABEL_THRESHOLD)]}
    ranked = np.argsort(-p, kind="stable")
    best = int(ranked[0]) if int(ranked[0]) != int(label) else int(ranked[1])
    return {"choices": [classes[best]]}


def span_issues_find(
    *, true_tags: list, predictions: list, tags: list[str], values: list[dict]
) -> LabelIssues:
    """Flag the labeled texts whose entities a confident out-of-fold CRF disagrees with, per entity.

    `true_tags`: each text's labeled IOB2 tags; `predictions`: each text's SpanPrediction from the
    fold model that did not see it (repaired tags, token marginals in `tags` order); `values`: the
    labeled values ({"spans": [...]}). cleanlab's token classification (`find_label_issues`, on
    the marginals as the tokens' class probabilities, confident learning's per-tag thresholds)
    flags the tokens whose labeled tag the model confidently contradicts; then, per entity:

    - a labeled span is disputed when one of its tokens is flagged and the model does not predict
      that very entity (it tags it otherwise: another label, other bounds, or nothing);
    - a predicted entity is missing from the label when one of its tokens is flagged and no
      labeled span is that entity.

    A text with either is flagged; its alternative (suspect_value) is its labeled spans less the
    disputed ones, plus the model's entities over the flagged tokens that overlap none kept.
    Quality is cleanlab's sentence score (`get_label_quality_scores`: the least self-confidence
    of its tokens), so review_priority orders every labeled text by its most doubtful token.
    """
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    from training.backends.spans import entities, spans_to_tags

    index = {tag: j for j, tag in enumerate(tags)}
    n = len(true_tags)
    quality = np.ones(n, dtype=np.float64)
    # cleanlab cannot take a text with no tokens; it has nothing to doubt.
    rows = [r for r in range(n) if len(true_tags[r])]
    flagged_tokens: dict[int, set[int]] = {r: set() for r in rows}
    if rows:
        labels = [np.asarray([index[t] for t in true_tags[r]], dtype=np.int64) for r in rows]
        # Clipped and renormalised: a tag the fold model never saw has marginal 0 everywhere.
        proba = [_renormalised(predictions[r].marginals) for r in rows]
        for sentence, token in find_label_issues(labels, proba, n_jobs=1):
            flagged_tokens[rows[sentence]].add(int(token))
        sentence_scores, _ = get_label_quality_scores(labels, proba)
        quality[rows] = np.clip(np.asarray(sentence_scores, dtype=np.float64), 0.0, 1.0)
    alternatives: dict[int, dict] = {}
    disputed_total = missing_total = 0
    for r, marked in flagged_tokens.items():
        if not marked:
            continue
        predicted = {(label, first, end) for label, first, end in entities(predictions[r].tags)}
        offsets = predictions[r].offsets
        labeled = values[r]["spans"]
        kept, disputed = [], 0
        for span in labeled:
            covered = [i for i, (s, e) in enumerate(offsets) if s < span["end"] and e > span["start"]]
            entity = (span["label"], covered[0], covered[-1] + 1) if covered else None
            if covered and marked.intersection(covered) and entity not in predicted:
                disputed += 1
            else:
                kept.append(span)
        labeled_entities = {
            (label, first, end) for label, first, end in entities(spans_to_tags(offsets, labeled)[0])
        }
        missing = [
            (label, first, end)
            for label, first, end in sorted(predicted, key=lambda e: e[1])
            if (label, first, end) not in labeled_entities and marked.intersection(range(first, end))
        ]
        if not disputed and not missing:
            continue
        alternative = list(kept)
        for label, first, end in missing:
            start, stop = offsets[first][0], offsets[end - 1][1]
            if all(stop <= s["start"] or start >= s["end"] for s in alternative):
                alternative.append({"start": start, "end": stop, "label": label})
        order = {tag[2:]: j for j, tag in enumerate(tags)}
        alternatives[r] = {
            "spans": sorted(alternative, key=lambda s: (s["start"], s["end"], order.get(s["label"], 0)))
        }
        disputed_total += disputed
        # A predicted entity over no labeled token is missing from the label; one over a disputed
        # span is that span's replacement, counted once (as disputed).
        labeled_tokens = {t for _, first, end in labeled_entities for t in range(first, end)}
        missing_total += sum(1 for _, first, end in missing if labeled_tokens.isdisjoint(range(first, end)))
    flagged = np.asarray(sorted(alternatives, key=lambda r: (quality[r], r)), dtype=np.int64)
    return LabelIssues(
        quality=quality,
        flagged=flagged,
        alternatives=alternatives,
        method="cleanlab token_classification find_label_issues on out-of-fold CRF marginals, per entity",
        counts={"entities_disputed": disputed_total, "entities_missing": missing_total},
    )


def _renormalised(marginals: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(marginals, dtype=np.float64), 1e-6, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def label_issues_store(
    *,
    project: Project,
    item_ids: list[int],
    values: list[dict],
    issues: LabelIssues,
    batch_size: int = 2000,
) -> int:
    """Write every labeled item's review priority, the flagged items' suspicion and alternative
    (queued for review where a reviewer can decide them), and clear older flags; returns the
    number of items flagged.

    `item_ids` and `values` are the snapshot's items and the final values the model judged, row
    for row with `issues`. One statement per batch of `batch_size` items, each batch its own
    transaction (as the pool scoring writes priorities), so no long lock is held on the items
    annotators and reviewers are working on.
    """
    if len(item_ids) != len(values) or len(item_ids) != len(issues.quality):
        raise ValueError("item_ids, values and the issues must be row for row")
    doubt = issues.doubt
    flagged = set(issues.flagged.tolist())
    _flags_clear_outside(project=project, item_ids=item_ids)
    for start in range(0, len(item_ids), batch_size):
        rows = range(start, min(start + batch_size, len(item_ids)))
        _batch_write(
            project_id=project.pk,
            ids=[int(item_ids[r]) for r in rows],
            values=[json.dumps(values[r]) for r in rows],
            doubt=[float(doubt[r]) for r in rows],
            suspicion=[float(doubt[r]) if r in flagged else None for r in rows],
            suspect=[json.dumps(issues.alternatives[r]) if r in flagged else None for r in rows],
        )
    logger.info(
        "label issues of project %s: %s of %s labels flagged", project.pk, len(flagged), len(item_ids)
    )
    return len(flagged)


def _flags_clear_outside(*, project: Project, item_ids: list[int]) -> None:
    """Clear the suspicion of the project's items outside the snapshot (no final label now, or one
    given after the snapshot): an older run flagged a label they no longer have."""
    table = Item._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET suspicion = NULL, suspect_value = NULL WHERE project_id = %s"
                " AND suspicion IS NOT NULL AND NOT (id = ANY(%s::bigint[]))",
                [project.pk, [int(i) for i in item_ids]],
            )
        else:
            cursor.execute(
                f"UPDATE {table} SET suspicion = NULL, suspect_value = NULL WHERE project_id = %s"
                " AND suspicion IS NOT NULL AND id NOT IN (SELECT value FROM json_each(%s))",
                [project.pk, json.dumps([int(i) for i in item_ids])],
            )


def _batch_write(*, project_id: int, ids, values, doubt, suspicion, suspect) -> None:
    """One batch's columns. Each is written only where the item's final value is still the one the
    model judged (`values`); a changed one gets its suspicion cleared and nothing else.

    On PostgreSQL one statement over arrays (unnest), as the pool scoring writes priorities; on
    SQLite an executemany of one prepared statement.
    """
    table = Item._meta.db_table
    queueable = [PickKind.GOLD, FinalSource.REVIEW, ReviewState.QUEUED]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            same = "i.final_value = v.value::jsonb"
            cursor.execute(
                f"UPDATE {table} AS i SET"
                f" review_priority = CASE WHEN {same} THEN v.doubt ELSE i.review_priority END,"
                f" suspicion = CASE WHEN {same} THEN v.suspicion END,"
                f" suspect_value = CASE WHEN {same} THEN v.suspect::jsonb END,"
                f" review_state = CASE WHEN {same} AND v.suspicion IS NOT NULL AND i.pick_kind <> %s"
                " AND i.final_source <> %s AND i.is_complete THEN %s ELSE i.review_state END"
                " FROM unnest(%s::bigint[], %s::text[], %s::float8[], %s::float8[], %s::text[])"
                " AS v(id, value, doubt, suspicion, suspect)"
                " WHERE i.id = v.id AND i.project_id = %s",
                [*queueable, ids, values, doubt, suspicion, suspect, project_id],
            )
            return
        same = "json(final_value) = json(%s)"
        cursor.executemany(
            f"UPDATE {table} SET"
            f" review_priority = CASE WHEN {same} THEN %s ELSE review_priority END,"
            f" suspicion = CASE WHEN {same} THEN %s END,"
            f" suspect_value = CASE WHEN {same} THEN %s END,"
            f" review_state = CASE WHEN {same} AND %s IS NOT NULL AND pick_kind <> %s"
            " AND final_source <> %s AND is_complete THEN %s ELSE review_state END"
            " WHERE id = %s AND project_id = %s",
            [
                (v, d, v, s, v, a, v, s, *queueable, i, project_id)
                for i, v, d, s, a in zip(ids, values, doubt, suspicion, suspect, strict=True)
            ],
        )
