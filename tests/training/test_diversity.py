"""Margin + diversity (training/strategies.py): a batch covers more near-duplicate groups than
plain margin, the same seed gives the same batch, and the scores are ranks above the margins."""

import numpy as np
import pytest
import scipy.sparse as sp

from annotate.models import Item, Label
from tests.training.projects import reviews_project
from training import strategies
from training.models import Prediction
from training.scoring import prediction_pool_score, scoring_strategy
from training.versions import model_version_train


def _groups(n=3000, groups=60, dims=32, seed=0):
    """Near-duplicate groups whose members share an uncertainty, so margin takes whole groups."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n)
    features = rng.normal(size=(groups, dims))[group] + 0.01 * rng.normal(size=(n, dims))
    p = 0.5 + 0.5 * rng.random(groups)[group] + 1e-4 * rng.random(n)
    return np.stack([p, 1 - p], axis=1), features, group


def _first(scores, batch):
    return np.argsort(-scores, kind="stable")[:batch]


def test_a_margin_diversity_batch_covers_more_groups_than_plain_margin():
    proba, features, group = _groups()
    diverse = _first(strategies.margin_diversity(proba, features, batch=20, seed=0), 20)
    plain = _first(strategies.margin(proba), 20)
    assert len(set(group[plain])) <= 2  # margin serves near-duplicates
    assert len(set(group[diverse])) >= 18


def test_the_same_seed_gives_the_same_batch():
    proba, features, _ = _groups(seed=3)
    first = strategies.margin_diversity(proba, features, batch=20, seed=7)
    again = strategies.margin_diversity(proba, features, batch=20, seed=7)
    assert np.array_equal(first, again)


def test_candidates_are_ranks_above_every_other_margin_and_the_rest_keep_theirs():
    proba, features, _ = _groups(n=5000)
    scores = strategies.margin_diversity(proba, features, batch=20, seed=0)
    margins = strategies.margin(proba)
    candidates = scores > 1
    assert candidates.sum() == strategies.diversity_prefilter_size(20) == 2000
    assert np.allclose(scores[~candidates], margins[~candidates])
    assert margins[candidates].min() >= margins[~candidates].max()  # the most uncertain are the candidates
    assert len(np.unique(scores[candidates])) == 2000 and scores.max() == 2.0


def test_sparse_hashed_features_work_as_dense_ones_do():
    proba, features, group = _groups(n=2500, groups=40)
    # One hot "words" per group in a 2^18-column hashed space, with a little noise.
    rng = np.random.default_rng(1)
    cols = (group[:, None] * 50 + np.arange(5)[None, :]).ravel()
    rows = np.repeat(np.arange(len(group)), 5)
    hashed = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(group), 2**18))
    hashed = hashed + sp.random(len(group), 2**18, density=2e-5, random_state=rng, format="csr")
    diverse = _first(strategies.margin_diversity(proba, hashed, batch=20, seed=0), 20)
    assert len(set(group[diverse])) >= 18


def test_the_cold_start_order_takes_each_cluster_in_turn():
    _, features, group = _groups(n=1000, groups=10)
    order = strategies.cold_start_order(features, clusters=20, seed=0)
    assert sorted(order.tolist()) == list(range(1000))
    assert len(set(group[order[:20]])) == 10


def test_margin_diversity_scores_items_by_margin_when_asked_without_features():
    proba, _, _ = _groups(n=50)
    assert np.allclose(
        strategies.scores("margin_diversity", proba, multi_label=False), strategies.margin(proba)
    )


@pytest.mark.django_db
def test_pool_scoring_with_margin_diversity_writes_ranks_above_the_stored_margins(no_warm_up):
    project = reviews_project(n=150, labeled=120)
    project.sampling_strategy = "margin_diversity"
    project.save(update_fields=["sampling_strategy"])
    version = model_version_train(project=project)
    assert prediction_pool_score(version=version) == 30
    pool = Item.objects.filter(project=project, is_complete=False)
    # Fewer open items than the prefilter: all are candidates, ranked in (1, 2].
    assert sorted(pool.values_list("priority", flat=True)) == [1 + (30 - r) / 30 for r in range(30)][::-1]
    assert Prediction.objects.filter(model_version=version, uncertainty__gt=1).count() == 0


@pytest.mark.django_db
def test_the_pool_is_ordered_for_diversity_while_a_label_has_too_few_labels():
    project = reviews_project(n=150, labeled=120)
    version = model_version_train(project=project)
    assert scoring_strategy(project=project, version=version) == "margin"
    Label.objects.create(project=project, name="neutral", order=9)
    assert scoring_strategy(project=project, version=version) == "margin_diversity"
    assert model_version_train(project=project).metrics["classes_left_out"] == {"neutral": 0}
    project.sampling_strategy = "random"
    project.save(update_fields=["sampling_strategy"])
    assert scoring_strategy(project=project, version=version) == "random"  # the baseline stays random
