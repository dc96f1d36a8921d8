import pytest
from django.db import connection

from annotate.models import Item
from tests.training.projects import reviews_project
from training.backends.text import TextFeatures, TextLogRegBackend
from training.features import PoolTextFeatures, _cache_dir, text_features
from training.scoring import prediction_pool_score
from training.versions import model_version_train

pytestmark = pytest.mark.django_db


def _items_analyzed() -> tuple[int, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the statistics views cache per transaction
        cursor.execute(
            "SELECT analyze_count, last_analyze FROM pg_stat_user_tables WHERE relname = %s",
            [Item._meta.db_table],
        )
        return cursor.fetchone()


@pytest.mark.postgres_only
def test_scoring_the_pool_leaves_the_items_planner_statistics_fresh():
    # Autovacuum is off on our machines: without an ANALYZE after the bulk rewrite of priorities
    # the next-item query was planned from stale statistics (p50 193 ms instead of 5.6 ms).
    project = reviews_project(n=150, labeled=120)
    version = model_version_train(project=project)
    count_before, _ = _items_analyzed()
    assert prediction_pool_score(version=version) == 30
    count_after, last_analyze = _items_analyzed()
    assert count_after == count_before + 1 and last_analyze is not None


def test_pool_features_read_the_cache_where_it_holds_the_items_and_hash_the_rest():
    project = reviews_project(n=40, labeled=0)
    featurizer = TextLogRegBackend().featurizer
    items = list(project.items.order_by("id").values_list("id", "text"))
    ids = [i for i, _ in items]
    texts = [t for _, t in items]
    text_features(project=project, item_ids=ids[::3], featurizer=featurizer)  # caches a third
    # Cache rows, hashed rows, mixed in one batch and in an order of their own.
    order = list(reversed(range(len(ids))))
    got = PoolTextFeatures(project=project, featurizer=featurizer).rows(
        [ids[i] for i in order], [texts[i] for i in order]
    )
    expected = featurizer.featurize([texts[i] for i in order])
    assert got.shape == expected.shape
    assert abs(got - expected).max() == 0
    # It never grows the cache: the rest stay uncached.
    path = _cache_dir(project) / f"text-features-{featurizer.fingerprint[:12]}.npz"
    assert sorted(TextFeatures.load_npz(path).item_ids.tolist()) == sorted(ids[::3])
