import pytest
from django.db import connection

from annotate.models import Item
from tests.training.projects import reviews_project
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
