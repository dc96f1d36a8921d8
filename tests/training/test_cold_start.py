"""The cold start (training/coldstart.py): an import of a class-sorted file gets random priorities
at once, then the background seed set puts a diverse set first in the real queue, and never
overwrites the order once a model has scored the pool."""

import io
from unittest import mock

import numpy as np
import pytest

from annotate import importing
from annotate.models import Item
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.training.projects import reviews_project
from training import coldstart, tasks
from training.scoring import prediction_pool_score
from training.versions import model_version_train

pytestmark = pytest.mark.django_db

WORDS = {
    "fruit": "apple banana cherry grape lemon mango peach plum",
    "metal": "iron copper zinc nickel cobalt silver gold tin",
    "bird": "robin sparrow eagle heron finch owl crow wren",
    "tool": "hammer wrench chisel drill saw pliers file rasp",
}


def _sorted_file(per_class=60, seed=0):
    """A CSV sorted by class: every fruit, then every metal, … (as real files often are)."""
    rng = np.random.default_rng(seed)
    lines = ["id,text,truth"]
    for name, words in WORDS.items():
        vocabulary = words.split()
        for i in range(per_class):
            lines.append(f"{name}{i},{' '.join(rng.choice(vocabulary, 6))},{name}")
    return "\n".join(lines) + "\n"


def _imported(django_capture_on_commit_callbacks, **fields):
    user = UserFactory()
    project = make_project(labels=list(WORDS), members=[(user, "annotator")], **fields)
    with (
        mock.patch.object(tasks.cold_start_compute, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        importing.import_csv(
            project=project, file=io.BytesIO(_sorted_file().encode()), filename="sorted.csv",
            text_column="text", id_column="id",
        )  # fmt: skip
    return project, user, delay


def _first_served(project, user, n=20):
    served = []
    for _ in range(n):
        lease = assignment_next(project=project, annotator=user)
        served.append(lease.item)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": ["fruit"]}
        )
    return served


def _classes(items):
    return {item.external_id.rstrip("0123456789") for item in items}


def test_an_import_writes_random_priorities_at_once_and_queues_the_seed_set(
    django_capture_on_commit_callbacks,
):
    project, _, delay = _imported(django_capture_on_commit_callbacks)
    priorities = list(Item.objects.filter(project=project).values_list("priority", flat=True))
    assert all(0 <= p < 1 for p in priorities) and len(set(priorities)) == len(priorities)
    delay.assert_called_once_with(project.pk)


def test_the_seed_set_puts_a_diverse_set_first_in_the_queue(django_capture_on_commit_callbacks):
    project, user, _ = _imported(django_capture_on_commit_callbacks)
    file_order = list(Item.objects.filter(project=project).order_by("id")[:20])
    assert _classes(file_order) == {"fruit"}  # the file's first 20 are one class

    tasks.cold_start_compute.apply(args=[project.pk])  # the task, run here (eager)

    assert Item.objects.filter(project=project, priority__gt=1).count() == 240
    served = _first_served(project, user)
    assert _classes(served) == set(WORDS)


def test_a_project_that_samples_at_random_has_no_seed_set(django_capture_on_commit_callbacks):
    """Random sampling is the baseline: random from the first item, the import's priorities."""
    project, _, delay = _imported(django_capture_on_commit_callbacks, sampling_strategy="random")
    delay.assert_not_called()
    before = dict(Item.objects.filter(project=project).values_list("id", "priority"))
    assert coldstart.cold_start_compute(project=project) == 0
    assert dict(Item.objects.filter(project=project).values_list("id", "priority")) == before
    assert all(0 <= p < 1 for p in before.values())


def test_the_seed_set_never_overwrites_a_model_s_order():
    project = reviews_project(n=150, labeled=120)
    version = model_version_train(project=project)
    prediction_pool_score(version=version)
    before = dict(Item.objects.filter(project=project).values_list("id", "priority"))

    assert coldstart.cold_start_compute(project=project) == 0
    assert not coldstart.cold_start_request(project=project)
    assert dict(Item.objects.filter(project=project).values_list("id", "priority")) == before


def test_the_write_itself_is_refused_once_a_version_exists():
    # A seed set computed while the first model trained: the statement's own test refuses it.
    from training.scoring import item_priorities_write

    project = reviews_project(n=150, labeled=120)
    model_version_train(project=project)
    ids = list(Item.objects.filter(project=project, is_complete=False).values_list("id", flat=True))
    assert item_priorities_write(ids=ids, priorities=[1.5] * len(ids), unless_scored=project.pk) == 0
    assert not Item.objects.filter(project=project, priority__gt=1).exists()
