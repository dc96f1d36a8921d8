"""A version's model card (training/model_card.py, the page training:model-card): the data it learned
from (labels per class, where they came from), its parameters, metrics with intervals, per-class
precision and recall beside the label distribution, curves, training time and hardware, and the bias
warning when a class is rare or much worse than the rest."""

import io
import os
from collections import Counter

import pytest
from django.urls import reverse

from annotate import importing
from annotate.items import item_create_bulk
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.training.data import reviews as rotten_tomatoes_reviews
from tests.training.projects import digits_project, label_everything, reviews_project

# Train as the worker does: one torch thread (test_backends' autouse fixture, used here too).
from tests.training.test_backends import _one_torch_thread  # noqa: F401
from tests.training.test_span_training import spans_project
from training.evaluation import wilson_interval
from training.model_card import RARE_SHARE, WORSE_BY, model_card
from training.versions import model_version_train

pytestmark = pytest.mark.django_db


def _card_page(client, project, version, user=None):
    client.force_login(user or project.memberships.get(role="manager").user)
    return client.get(reverse("training:model-card", args=[project.pk, version.number]))


def test_the_card_shows_data_parameters_metrics_with_intervals_timings_and_hardware(client):
    project = reviews_project(n=150)
    project.training_params = {"C": 3.0}
    project.save(update_fields=["training_params"])
    version = model_version_train(project=project)
    m = version.metrics

    # What was recorded when it trained: labels per class from the snapshot, their source, the machine.
    counts = Counter(value["choices"][0] for value in version.dataset.values)
    assert m["data"]["per_class"] == {name: counts[name] for name in ["fresh", "rotten"]}
    assert m["data"]["sources"] == {"single": 150}
    assert m["hardware"]["cores"] == os.cpu_count() and m["hardware"]["device"] == "cpu"
    assert m["hardware"]["scikit-learn"]

    response = _card_page(client, project, version)
    assert response.status_code == 200
    text = response.text
    low, high = m["accuracy_ci"]
    assert f"{m['accuracy']:.3f}" in text and f"{low:.3f}–{high:.3f}" in text
    assert "5 folds" in text and "One annotator 150" in text
    assert "<dt>C</dt><dd>3.0 <strong>(set)</strong></dd>" in text
    card = model_card(version=version)
    for row in card.rows:
        # Each class's recall interval is Wilson's on its out-of-fold counts.
        j = m["classes"].index(row.name)
        matrix = m["confusion_matrix"]
        assert row.recall_ci == wilson_interval(matrix[j][j], sum(matrix[j]))
        assert row.labels == counts[row.name]
        assert f"{row.labels} ({row.share_percent}%)" in text
        assert f"({row.recall_ci[0]:.2f}–{row.recall_ci[1]:.2f})" in text
    assert f"{card.seconds} s in all" in text and "cross-validate" in text
    assert "<dt>cores</dt>" in text and "No loss curve: text_logreg" in text
    assert 'id="model-download"' in text
    # The project page links to it.
    page = client.get(reverse("annotate:project", args=[project.pk])).text
    assert reverse("training:model-card", args=[project.pk, version.number]) in page


def _skewed_project(rare: int, n: int = 150):
    """A text project of Rotten Tomatoes snippets, `rare` of them labeled "unsure" (the rest truly)."""
    user = UserFactory()
    project = make_project(labels=["fresh", "rotten", "unsure"], members=[(user, "annotator")])
    reviews = rotten_tomatoes_reviews()[:n]
    rows = "id,text\n" + "".join(
        f'r{i},"{r.text.replace(chr(34), chr(39))}"\n' for i, r in enumerate(reviews)
    )
    importing.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="rt.csv", text_column="text", id_column="id"
    )
    done = 0
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        i = int(lease.item.external_id[1:])
        choice = "unsure" if done < rare else reviews[i].category
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value={"choices": [choice]})
        done += 1
    return project


def test_a_rare_class_that_the_model_misses_gets_the_bias_warning(client):
    project = _skewed_project(rare=4)  # 4 of 150 random snippets: 2.7%, and nothing to tell them apart
    version = model_version_train(project=project)
    card = model_card(version=version)
    unsure = next(row for row in card.rows if row.name == "unsure")
    assert unsure.share < RARE_SHARE and "rare" in unsure.warnings
    assert "much worse" in unsure.warnings and unsure.recall < 0.5
    others = [row for row in card.rows if row.name != "unsure"]
    assert all(not row.warnings for row in others)
    text = _card_page(client, project, version).text
    assert "unsure is rare: 4 of 150 training labels (2.7%, under 5%)" in text
    assert "unsure is recognised much worse than the rest" in text


def test_a_model_good_at_every_balanced_class_gets_no_bias_warning(client):
    user = UserFactory()
    project = make_project(labels=["up", "down", "flat"], members=[(user, "annotator")])
    words = {
        "up": ["rose", "climbed", "soared"],
        "down": ["fell", "dropped", "sank"],
        "flat": ["held", "stayed", "paused"],
    }
    rows = [
        {"external_id": f"{label}-{i}", "text": f"the price {words[label][i % 3]} on day {i}"}
        for label in words
        for i in range(30)
    ]
    item_create_bulk(project=project, rows=rows)
    label_everything(project, user, lambda item: item.external_id.split("-")[0])
    version = model_version_train(project=project)
    card = model_card(version=version)
    assert card.warnings == [] and all(row.share >= RARE_SHARE and row.recall > 0.9 for row in card.rows)
    text = _card_page(client, project, version).text
    assert "No class is rare (under 5.0% of the training labels)" in text
    assert f"or recognised much worse than the rest (recall {WORSE_BY}" in text


def test_an_image_cards_loss_curve_and_device_and_a_spans_card(client):
    project = digits_project(n=80)
    project.training_params = {"epochs": 3}
    project.save(update_fields=["training_params"])
    version = model_version_train(project=project, folds=2)
    text = _card_page(client, project, version).text
    assert 'id="loss-curve"' in text and "<dt>device</dt>" in text
    assert version.metrics["hardware"]["torch"] and version.metrics["hardware"]["device"] == "cpu"
    assert 'id="card-pseudo-labels"' not in text  # every item is labeled: nothing to pseudo-label

    few = digits_project(n=150, labeled=60)
    few.training_params = {"epochs": 3}
    few.save(update_fields=["training_params"])
    version = model_version_train(project=few, folds=2)
    pseudo = version.metrics["fit"]["pseudo_labels"]
    assert pseudo > 0
    assert f"also trained on {pseudo} pseudo-labels" in _card_page(client, few, version).text

    spans = spans_project(labeled=40)
    span_version = model_version_train(project=spans, folds=3)
    card = model_card(version=span_version)
    per_class = span_version.metrics["per_class"]
    for row in card.rows:
        # Entities per label in the training data; the recall interval on seqeval's true entities.
        assert row.labels == sum(
            1 for value in span_version.dataset.values for s in value["spans"] if s["label"] == row.name
        )
        support = per_class[row.name]["support"]
        if support:
            assert row.recall_ci == wilson_interval(round(row.recall * support), support)
    assert _card_page(client, spans, span_version).status_code == 200


def test_who_may_open_a_card(client):
    project = reviews_project(n=80)
    version = model_version_train(project=project, folds=0, diagnostics=False)
    reviewer, annotator, stranger = UserFactory(), UserFactory(), UserFactory()
    project.memberships.create(user=reviewer, role="reviewer")
    project.memberships.create(user=annotator, role="annotator")
    response = _card_page(client, project, version, reviewer)
    assert response.status_code == 200 and 'id="model-download"' not in response.text
    assert _card_page(client, project, version, annotator).status_code == 403
    assert _card_page(client, project, version, stranger).status_code == 404
    client.force_login(project.memberships.get(role="manager").user)
    missing = client.get(reverse("training:model-card", args=[project.pk, version.number + 1]))
    assert missing.status_code == 404
