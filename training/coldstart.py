"""Cold start: before any model exists, the queue serves a diverse seed set, not the file's order.

An import gives every new item a random priority in [0, 1) at once (annotate/importing/writer.py),
so the queue never serves a class-sorted file class by class. Once the import commits, annotate
sends items_imported; training's receiver (TrainingConfig.ready) queues `cold_start_compute` on
commit, and the task, in the background, clusters the open items (k-means on hashed n-grams of
their text, or on their pixels; strategies.cold_start_order) and writes them as priorities in
(1, 2] above the random ones, ranks interleaved across the clusters: cluster 1's most typical
item, cluster 2's, …, then each cluster's second. Up to COLD_START_SAMPLE open items take part
(a uniform sample beyond that); the others keep their random priorities.

A project whose strategy is random has no seed set: random sampling is random from the first
item (the import's priorities), so that it stays the honest baseline the lead's page and the
simulation compare the other strategies against. The seed set is part of those strategies.

Once the project has a model version, nothing here writes: the request is not queued, and the
write itself is conditional on "no version yet" in the same statement (scoring.item_priorities_write),
so a seed set computed while the first model trained never overwrites the model's order.
"""

import logging
import time

import numpy as np

from annotate.models import Item, Label, Project
from annotate.queue import queue_reordering
from training.models import ModelVersion
from training.scoring import item_priorities_write

logger = logging.getLogger(__name__)

# Open items clustered at most (a uniform sample beyond): 10,000 texts featurize and cluster in
# seconds on one core, and the seed set is the first few hundred items served.
COLD_START_SAMPLE = 10_000
# k-means groups: twice the labels, at least 20, so the first items served cover every class of
# a project with a few dozen labels and the several looks of each.
COLD_START_CLUSTERS_MIN = 20
COLD_START_CLUSTERS_MAX = 200
RANDOM = "random"


def cold_start_request(*, project: Project) -> bool:
    """Queue the seed set's computation once this transaction commits, unless the project samples
    at random or has a model version already (its order stands). Returns whether it was queued."""
    from training import tasks

    if project.sampling_strategy == RANDOM or ModelVersion.objects.filter(project=project).exists():
        return False
    tasks.cold_start_compute.delay_on_commit(project.pk)
    return True


def cold_start_receiver(*, project: Project, **kwargs) -> None:
    """Receiver of annotate.signals.items_imported (connected in TrainingConfig.ready)."""
    cold_start_request(project=project)


def cold_start_clusters(*, project: Project) -> int:
    """How many k-means groups the seed set takes turns over."""
    labels = Label.objects.filter(project=project).count()
    return min(max(COLD_START_CLUSTERS_MIN, 2 * labels), COLD_START_CLUSTERS_MAX)


def cold_start_compute(*, project: Project, seed: int = 0) -> int:
    """Write the diverse seed set as the open items' priorities; returns the items written (0 once
    the project has a model version, when it samples at random, or with fewer than 2 open items)."""
    from training.strategies import cold_start_order, rank_scores

    if project.sampling_strategy == RANDOM or ModelVersion.objects.filter(project=project).exists():
        return 0
    ids = list(
        Item.objects.filter(project=project, is_complete=False).order_by("id").values_list("id", flat=True)
    )
    if len(ids) < 2:
        return 0
    if len(ids) > COLD_START_SAMPLE:
        chosen = np.random.default_rng(seed).choice(len(ids), COLD_START_SAMPLE, replace=False)
        ids = [ids[i] for i in np.sort(chosen)]
    started = time.perf_counter()
    features = cold_start_features(project=project, item_ids=ids)
    order = cold_start_order(features, clusters=cold_start_clusters(project=project), seed=seed)
    ranks = rank_scores(order, len(ids))
    # Bookmarks assume the order stands: none is used or written while the priorities change.
    with queue_reordering(project_id=project.pk):
        written = item_priorities_write(ids=ids, priorities=ranks.tolist(), unless_scored=project.pk)
    logger.info(
        "cold start of project %s: %s items ordered over %s clusters in %.1f s",
        project.pk, written, cold_start_clusters(project=project), time.perf_counter() - started,
    )  # fmt: skip
    return written


def cold_start_features(*, project: Project, item_ids: list[int]):
    """What the seed set is clustered on: the images' pixels (cached per item, as training reads
    them), or the texts' hashed n-grams (the text model's featurizer, cached, so the first run
    reuses them)."""
    from training.features import image_arrays, text_features

    if project.is_image:
        return image_arrays(project=project, item_ids=item_ids)
    from training.backends.text import TextLogRegBackend

    return text_features(project=project, item_ids=item_ids, featurizer=TextLogRegBackend().featurizer)
