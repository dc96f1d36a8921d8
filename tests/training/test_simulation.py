"""The active-learning simulation (training/simulation/, manage.py simulate_active_learning): known
labels replayed through the real queue, training and scoring, in a database of its own."""

import io
import json
import xml.etree.ElementTree as ET

import pytest
from celery.signals import before_task_publish
from django.core.management import call_command

from annotate import importing
from annotate.models import Annotation, Item, Project
from tests.factories import make_project
from training.models import ModelVersion
from training.simulation.replay import Curve, Point
from training.simulation.report import labels_to_reach, table_text
from training.simulation.sources import source_synthetic_text

pytestmark = pytest.mark.django_db


def _run(tmp_path, *args) -> dict:
    call_command("simulate_active_learning", *args, "--out", str(tmp_path), stdout=io.StringIO())
    return json.loads((tmp_path / "curves.json").read_text())


@pytest.mark.slow
def test_simulation_of_2000_synthetic_texts_writes_the_table_and_a_rising_curve(tmp_path):
    before = Project.objects.count()
    result = _run(
        tmp_path, "--dataset", "synthetic_text", "--size", "2000", "--strategy", "margin", "--strategy",
        "random", "--seed-size", "50", "--batch", "50", "--budget", "200", "--repeats", "1",
    )  # fmt: skip

    curves = {c["strategy"]: c for c in result["curves"]}
    assert set(curves) == {"margin", "random"}
    for curve in curves.values():
        assert [p["n_labels"] for p in curve["points"]] == [50, 100, 150, 200]
        scores = [p["score"] for p in curve["points"]]
        assert scores[-1] > scores[0] + 0.1  # the curve rises
        assert curve["full_score"] >= 0.9
    table = (tmp_path / "table.txt").read_text().splitlines()
    header = next(line for line in table if line.startswith("strategy"))
    for column in ("90% of full", "95% of full", "99% of full", "share of random's labels", "worst gap"):
        assert column in header
    assert [line.split()[0] for line in table[table.index(header) + 1 :][:2]] == ["margin", "random"]
    svg = ET.fromstring((tmp_path / "learning_curve.svg").read_text())
    lines = [e for e in svg.iter("{http://www.w3.org/2000/svg}polyline") if e.get("class") == "curve"]
    assert {e.get("data-strategy") for e in lines} == {"margin", "random"}
    # The studio's own database got nothing: the replay ran in a sandbox of its own.
    assert Project.objects.count() == before


def test_simulation_replays_a_projects_imported_label_column_and_leaves_the_project_alone(tmp_path):
    source = source_synthetic_text(n=300, seed=3)
    project = make_project(labels=source.classes)
    rows = "id,text,label\n" + "".join(
        f"{i},{t},{v['choices'][0]}\n"
        for i, (t, v) in enumerate(zip(source.texts, source.values, strict=True))
    )
    importing.import_csv(project=project, file=io.BytesIO(rows.encode()), filename="s.csv", id_column="id",
                         label_column="label")  # fmt: skip
    annotations = Annotation.objects.filter(project=project).count()
    published = []

    def record(sender=None, **kwargs):
        published.append(sender)

    before_task_publish.connect(record)

    result = _run(tmp_path, "--project", str(project.pk), "--strategy", "entropy", "--seed-size", "20",
                  "--batch", "20", "--budget", "60", "--order", "sorted",
                  "--random-share", "0")  # fmt: skip

    before_task_publish.disconnect(record)
    # The cold start's task (dispatched after each import) ran in the sandbox, never via the broker.
    assert published == []
    (curve,) = result["curves"]
    assert curve["strategy"] == "entropy"
    assert [p["n_labels"] for p in curve["points"]] == [20, 40, 60]
    assert result["settings"]["order"] == "sorted"
    # Every round has a held-out score, or says why there was no model yet.
    assert all(p["note"] if p["score"] is None else 0.0 <= p["score"] <= 1.0 for p in curve["points"])
    assert curve["points"][-1]["score"] is not None
    assert Annotation.objects.filter(project=project).count() == annotations
    assert not ModelVersion.objects.filter(project=project).exists()
    assert Item.objects.filter(project=project).count() == 300


def test_simulation_of_spans_measures_entity_f1(tmp_path):
    result = _run(tmp_path, "--dataset", "synthetic_spans", "--size", "120", "--strategy", "margin",
                  "--seed-size", "10", "--batch", "15", "--budget", "40")  # fmt: skip

    assert result["measure"] == "entity F1"
    (curve,) = result["curves"]
    scores = [p["score"] for p in curve["points"]]
    assert [p["n_labels"] for p in curve["points"]] == [10, 25, 40]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores[-1] >= 0.8
    assert "entity F1" in (tmp_path / "table.txt").read_text()


def test_a_threshold_never_reached_within_the_budget_is_said_so():
    curves = [
        Curve(strategy="margin", repeat=r, full_score=0.9, points=[Point(20, 0.5), Point(40, 0.86)])
        for r in range(2)
    ]
    assert labels_to_reach(curves[0], 0.95) == 40
    assert labels_to_reach(curves[0], 0.99) is None
    table = table_text(title="t", curves=curves, strategies=["margin"], budget=40, measure="accuracy")
    assert "not reached in 2/2 (budget 40)" in table
    assert "40 " in table.splitlines()[-2]  # 90% and 95% reached at 40 in both repeats (no spread)


def test_repeats_in_forked_processes_or_a_later_run_give_the_curves_of_one_process(tmp_path):
    args = ["--dataset", "synthetic_text", "--size", "300", "--strategy", "margin_diversity",
            "--seed-size", "20", "--batch", "20", "--budget", "60", "--repeats", "2"]  # fmt: skip
    before = Project.objects.count()
    one = _run(tmp_path / "one", *args)
    two = _run(tmp_path / "two", *args, "--jobs", "2")

    def points(result):
        return [(c["repeat"], [(p["n_labels"], p["score"]) for p in c["points"]]) for c in result["curves"]]

    assert [c["repeat"] for c in two["curves"]] == [0, 1]
    assert points(two) == points(one)
    # A later run adds repeat 1 on its own: the same curve (each repeat is seeded by its number).
    args[args.index("--repeats") + 1] = "1"
    later = _run(tmp_path / "later", *args, "--first-repeat", "1")
    assert points(later) == points(one)[1:]
    assert all(p["score"] is not None for c in two["curves"] for p in c["points"][1:])
    # The parent's transaction (this test's) carried on, untouched.
    assert Project.objects.count() == before


def test_the_label_issue_phase_needs_k_fold_fits(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="needs k-fold fits"):
        _run(tmp_path, "--dataset", "synthetic_text", "--size", "100", "--label-issues")


@pytest.mark.slow
def test_simulation_with_the_sentence_encoder_trains_on_embeddings(tmp_path):
    result = _run(tmp_path, "--dataset", "synthetic_text", "--size", "300", "--strategy", "margin",
                  "--seed-size", "20", "--batch", "20", "--budget", "60",
                  "--text-model", "encoder")  # fmt: skip

    assert result["settings"]["text_model"] == "encoder"
    (curve,) = result["curves"]
    assert [p["n_labels"] for p in curve["points"]] == [20, 40, 60]
    # Random-letter words mean nothing to a sentence encoder: above chance (4 classes), no more.
    assert curve["points"][-1]["score"] is not None and curve["points"][-1]["score"] > 0.3
    assert curve["backend"] == "text_encoder"
