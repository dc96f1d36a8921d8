"""The leads' dashboards: each chart's figures against a recount from the rows, who may see them,
the SVG, and that a page reads tallies in a bounded number of queries, never the annotations."""

import math
import random
import re
import statistics
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from annotate import charts, queue
from annotate.dashboards import CHARTS, SECONDS_MEDIAN_RELATIVE_ERROR, dashboard_read, histogram_median
from annotate.gold import item_gold_set
from annotate.models import Annotation, Item, Membership, PickKind, Review
from annotate.queue import annotation_submit, assignment_next
from annotate.review import review_decide
from tests.factories import UserFactory, make_project
from training.proposals import proposal_acceptance

LABELS = ("cat", "dog", "<script>")
OVERLAP = 2
DAYS = 3


def _at(day: int, minute: int) -> datetime:
    """Noon (local) `DAYS - day` days ago, plus some minutes: each day of the scenario its own date."""
    today = timezone.localdate()
    moment = datetime.combine(today - timedelta(days=DAYS - day), time(12, 0))
    return timezone.make_aware(moment) + timedelta(minutes=minute)


class Scenario:
    """A project labeled through the real queue over DAYS days by three annotators (overlap 2),
    with two gold items, proposals from two model versions, and some disagreements."""

    def __init__(self, monkeypatch):
        self.annotators = [UserFactory(username=name) for name in ("alice", "bob", "<b>eve</b>")]
        self.reviewer = UserFactory(username="rita")
        self.project = make_project(
            labels=LABELS,
            items=30,
            overlap=OVERLAP,
            gold_share=0.3,
            members=[*((a, "annotator") for a in self.annotators), (self.reviewer, "reviewer")],
        )
        self.manager = self.project.memberships.get(role="manager").user
        for item in self.project.items.order_by("id")[:2]:
            item_gold_set(project=self.project, item_id=item.pk, value={"choices": ["dog"]})
        # The gold share is a draw: seeded, so the scenario is the same every run.
        monkeypatch.setattr(queue, "_random", random.Random(11))
        self.rng = random.Random(5)
        self.minute = 0

    def membership(self, user) -> Membership:
        return Membership.objects.get(project=self.project, user=user)

    def label(self, user, *, day: int) -> Annotation | None:
        """One cycle of `user`: the next item, then a submit (None when nothing is left)."""
        self.minute += 1
        now = _at(day, self.minute)
        membership = self.membership(user)
        lease = assignment_next(project=self.project, annotator=user, membership=membership, now=now)
        if lease is None:
            return None
        value = {"choices": [self.rng.choice(LABELS)]}
        proposal = version = None
        if self.rng.random() < 0.5:
            version = self.rng.choice((101, 102))
            proposal = value if self.rng.random() < 0.6 else {"choices": [self.rng.choice(LABELS)]}
        return annotation_submit(
            project=self.project,
            item_id=lease.item.pk,
            annotator=user,
            membership=membership,
            value=value,
            active_ms=self.rng.choice((800, 2_300, 4_100, 9_700, 15_500, 61_000)) + self.rng.randrange(90),
            proposal_value=proposal,
            proposal_model_version_id=version,
            now=now,
        )

    def run(self, days=range(DAYS), cycles: int = 4) -> None:
        for day in days:
            for _ in range(cycles):
                for user in self.annotators:
                    self.label(user, day=day)


@pytest.fixture
def scenario(monkeypatch):
    labeled = Scenario(monkeypatch)
    labeled.run()
    return labeled


def _day(moment) -> str:
    return timezone.localdate(moment).isoformat()


def _votes(project) -> dict[int, dict[int, dict]]:
    """Per ordinary item, each voter's latest value: annotators with a counted annotation."""
    rows = defaultdict(list)
    for a in Annotation.objects.filter(project=project).exclude(item__pick_kind=PickKind.GOLD).order_by("id"):
        rows[a.item_id].append(a)
    votes = {}
    for item_id, annotations in rows.items():
        latest = {a.annotator_id: a.value for a in annotations}
        voters = {a.annotator_id for a in annotations if a.counted}
        votes[item_id] = {a: latest[a] for a in voters}
    return votes


def _figures(project, *names):
    return dashboard_read(project=project, charts=names or CHARTS)


pytestmark = pytest.mark.django_db


# --- each chart against a recount ----------------------------------------------------------------


def test_labels_per_day_are_the_annotations_per_annotator_and_day(scenario):
    data = _figures(scenario.project, "labels_per_day")["labels_per_day"]
    recount = Counter(
        (_day(a.created_at), a.annotator_id) for a in Annotation.objects.filter(project=scenario.project)
    )
    shown = {
        (day, row.annotator_id): n
        for row in data.annotators
        for day, n in zip(data.days, row.per_day, strict=True)
        if n
    }
    assert shown == dict(recount)
    assert len(data.days) == DAYS and {row.username for row in data.annotators} == {
        "alice",
        "bob",
        "<b>eve</b>",
    }


def test_progress_is_the_items_completed_per_day_added_up(scenario):
    project = scenario.project
    data = _figures(project, "progress")["progress"]
    completed_on = Counter()
    for annotations in _counted_by_item(project).values():
        if len(annotations) >= OVERLAP:
            completed_on[_day(annotations[OVERLAP - 1].created_at)] += 1
    assert {d.day: d.completed for d in data.days if d.completed} == dict(completed_on)
    assert data.completed == data.days[-1].cumulative == sum(completed_on.values())
    gold = Item.objects.filter(project=project, pick_kind=PickKind.GOLD).count()
    assert (data.total_items, data.gold_items) == (Item.objects.filter(project=project).count() - gold, gold)
    assert gold == 2


def _counted_by_item(project) -> dict[int, list[Annotation]]:
    found = defaultdict(list)
    ordinary = Annotation.objects.filter(project=project, counted=True).exclude(item__pick_kind=PickKind.GOLD)
    for a in ordinary.order_by("id"):
        found[a.item_id].append(a)
    return found


def test_median_seconds_come_from_the_histogram_within_its_stated_error(scenario):
    data = _figures(scenario.project, "seconds")["seconds"]
    seconds = defaultdict(list)
    for a in Annotation.objects.filter(project=scenario.project):
        seconds[a.annotator_id].append(a.active_ms / 1000)
    assert {row.annotator_id: row.annotations for row in data.annotators} == {
        a: len(v) for a, v in seconds.items()
    }
    for row in data.annotators:
        true_median = statistics.median_low(seconds[row.annotator_id])
        assert row.median_low_seconds <= true_median < row.median_high_seconds
        assert abs(row.median_seconds / true_median - 1) <= SECONDS_MEDIAN_RELATIVE_ERROR + 1e-12
    assert data.buckets_per_doubling == 4 and 0.09 < data.relative_error < 0.091


def test_histogram_median_is_the_bucket_of_the_lower_median():
    assert histogram_median({}) is None
    assert histogram_median({3: 1}) == 3
    assert histogram_median({1: 2, 5: 2}) == 1  # the lower of the two middle values
    assert histogram_median({1: 2, 5: 3}) == 5


def test_agreement_matrix_is_cohens_kappa_of_each_pair(scenario):
    data = _figures(scenario.project, "agreement")["agreement"]
    votes = _votes(scenario.project)
    ids = [a.pk for a in scenario.annotators]
    position = {ref.annotator_id: i for i, ref in enumerate(data.annotators)}
    checked = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            both = [v for v in votes.values() if a in v and b in v]
            if not both:
                continue
            expected = cohen_kappa_score(
                [v[a]["choices"][0] for v in both], [v[b]["choices"][0] for v in both]
            )
            shown = data.kappa_matrix[position[a]][position[b]]
            assert shown == data.kappa_matrix[position[b]][position[a]]
            if math.isnan(expected):
                assert shown is None
            else:
                assert shown == pytest.approx(expected, abs=1e-9)
            pair = next(p for p in data.pairs if {p.annotator_a, p.annotator_b} == {a, b})
            assert pair.items == len(both)
            checked += 1
    assert checked >= 2
    assert all(data.kappa_matrix[i][i] is None for i in range(len(data.annotators)))


def test_gold_accuracy_is_each_annotators_gold_answers_with_the_wilson_interval(scenario):
    data = _figures(scenario.project, "gold")["gold"]
    answers, correct = Counter(), Counter()
    for a in Annotation.objects.filter(
        project=scenario.project, item__pick_kind=PickKind.GOLD
    ).select_related("item"):
        answers[a.annotator_id] += 1
        correct[a.annotator_id] += a.value == a.item.gold_value
    assert sum(answers.values()) > 0
    rows = {row.annotator_id: row for row in data.annotators}
    assert set(rows) == {a.pk for a in scenario.annotators}  # the reviewer and manager gave none
    for annotator_id, row in rows.items():
        assert (row.answers, row.correct) == (answers[annotator_id], correct[annotator_id])
        if not row.answers:
            assert row.accuracy is None and row.low is None
            continue
        low, high = proportion_confint(row.correct, row.answers, alpha=0.05, method="wilson")
        assert row.accuracy == pytest.approx(row.correct / row.answers)
        assert (row.low, row.high) == pytest.approx((low, high), abs=1e-12)


def test_label_distribution_and_sources_are_the_items_final_labels(scenario):
    project = scenario.project
    data = _figures(project, "labels")["labels"]
    labels, sources = Counter(), Counter()
    votes = _votes(project)
    for item in Item.objects.filter(project=project):
        if item.pick_kind == PickKind.GOLD:
            labels.update(item.gold_value["choices"])
            sources["gold"] += 1
            continue
        values = [v["choices"][0] for v in votes.get(item.pk, {}).values()]
        if not values:
            sources["none"] += 1
        elif len(values) == 1:
            sources["single"] += 1
            labels[values[0]] += 1
        else:
            ranked = Counter(values).most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                sources["tie"] += 1
            else:
                sources["consensus"] += 1
                labels[ranked[0][0]] += 1
    assert {row.label: row.items for row in data.labels} == {name: labels[name] for name in LABELS}
    assert [row.label for row in data.labels] == list(LABELS)  # the project's order
    assert {row.source: row.items for row in data.sources if row.items} == dict(sources)
    assert data.total_items == 30


def test_proposal_acceptance_per_version_counts_the_proposals_shown(scenario):
    shown, accepted = Counter(), Counter()
    for a in Annotation.objects.filter(project=scenario.project, proposal_model_version_id__isnull=False):
        shown[a.proposal_model_version_id] += 1
        accepted[a.proposal_model_version_id] += bool(a.proposal_accepted)
    data = _figures(scenario.project, "proposals")["proposals"]
    assert {v.model_version_id: (v.shown, v.accepted) for v in data.versions} == {
        v: (shown[v], accepted[v]) for v in shown
    }
    assert set(shown) == {101, 102}
    # training's selector (the project page's Model card) reads the same tallies.
    assert proposal_acceptance(project=scenario.project) == {
        v: {"shown": shown[v], "accepted": accepted[v], "rate": accepted[v] / shown[v]} for v in shown
    }


def _voters(project, item_id) -> dict[int, dict]:
    annotations = Annotation.objects.filter(item_id=item_id, counted=True).order_by("id")
    return {a.annotator_id: a.value for a in annotations}


def test_review_outcomes_are_the_decisions_in_force_per_annotator(scenario):
    project, reviewer = scenario.project, scenario.reviewer
    complete = list(Item.objects.filter(project=project, is_complete=True).exclude(pick_kind=PickKind.GOLD))
    accept, correct, reject, twice = complete[:4]
    first = Annotation.objects.filter(item=accept, counted=True).order_by("id").first()
    review_decide(project=project, item_id=accept.pk, reviewer=reviewer, decision="accept", supersedes=None,
                  annotation_id=first.pk)  # fmt: skip
    review_decide(project=project, item_id=correct.pk, reviewer=reviewer, decision="correct", supersedes=None,
                  value={"choices": ["cat"]})  # fmt: skip
    rejected = Annotation.objects.filter(item=reject, counted=True).order_by("id").first()
    review_decide(project=project, item_id=reject.pk, reviewer=reviewer, decision="reject", supersedes=None,
                  annotation_id=rejected.pk, reason="not a cat")  # fmt: skip
    earlier = review_decide(project=project, item_id=twice.pk, reviewer=reviewer, decision="correct",
                            supersedes=None, value={"choices": ["dog"]})  # fmt: skip
    review_decide(project=project, item_id=twice.pk, reviewer=reviewer, decision="correct",
                  supersedes=earlier.pk, value={"choices": ["<script>"]})  # fmt: skip

    recount = Counter()
    for item in (accept, correct, reject, twice):
        in_force = Review.objects.filter(item=item).order_by("-id").first()
        if in_force.decision == "reject":
            recount[in_force.annotation.annotator_id, "rejected"] += 1
            continue
        before = {a.annotator_id: a.value for a in Annotation.objects.filter(item=item, counted=True)}
        for annotator_id, value in before.items():
            recount[annotator_id, "accepted" if value == in_force.value else "corrected"] += 1
    data = _figures(project, "reviews")["reviews"]
    shown = {(row.annotator_id, outcome): getattr(row, outcome) for row in data.annotators
             for outcome in ("accepted", "corrected", "rejected") if getattr(row, outcome)}  # fmt: skip
    assert shown == dict(recount)
    assert sum(recount.values()) == 7  # 2 + 2 + 1 + 2: the superseded correction counts no more

    # The reject reopened its item: progress counts one item fewer than before.
    progress = _figures(project, "progress")["progress"]
    still = sum(1 for annotations in _counted_by_item(project).values() if len(annotations) >= OVERLAP)
    assert progress.completed == still == len(complete) - 1


# --- the pages and the API --------------------------------------------------------------------


def _page(client, project):
    return client.get(reverse("annotate:dashboards", kwargs={"project_id": project.pk}))


def _api(user, project, chart=None, **params):
    client = APIClient()
    client.force_authenticate(user)
    name = "api:dashboards" if chart is None else f"api:dashboard-{chart}"
    return client.get(reverse(name, kwargs={"project_id": project.pk}), params)


def test_only_the_projects_managers_open_the_dashboards(client):
    annotator, reviewer, stranger = UserFactory(), UserFactory(), UserFactory()
    project = make_project(members=[(annotator, "annotator"), (reviewer, "reviewer")])
    manager = project.memberships.get(role="manager").user
    url = reverse("annotate:dashboards", kwargs={"project_id": project.pk})
    assert client.get(url).status_code == 302  # to the login page
    for user, status in ((annotator, 403), (reviewer, 403), (stranger, 404), (manager, 200)):
        client.force_login(user)
        assert _page(client, project).status_code == status, user
        for chart in (None, "progress", "labels-per-day", "agreement", "reviews"):
            assert _api(user, project, chart).status_code == status, (user, chart)
    assert APIClient().get(reverse("api:dashboards", kwargs={"project_id": project.pk})).status_code == 401


def test_page_draws_every_chart_as_well_formed_svg_that_escapes_labels_and_names(client, scenario):
    client.force_login(scenario.manager)
    response = _page(client, scenario.project)
    assert response.status_code == 200
    assert "annotate/dashboards.html" in [t.name for t in response.templates]
    svgs = re.findall(r"<svg\b.*?</svg>", response.text, flags=re.S)
    assert len(svgs) == 8
    texts = []
    for svg in svgs:
        root = ET.fromstring(svg)
        assert not [el for el in root.iter() if el.tag.split("}")[-1] in ("script", "foreignObject")]
        assert "<script" not in svg and " on" not in re.sub(r'"[^"]*"', '""', svg)
        texts.extend(el.text or "" for el in root.iter())
    assert "<script>" in texts and "<b>eve</b>" in " ".join(texts)
    assert "approximate" in response.text.lower() and "4 buckets per doubling" in response.text
    assert "version #101" in response.text  # no such training version: its id is shown


def test_page_and_api_name_model_versions_by_their_number(client):
    from training.models import DatasetSnapshot, ModelVersion

    annotator = UserFactory()
    project = make_project(items=2, members=[(annotator, "annotator")])
    manager = project.memberships.get(role="manager").user
    snapshot = DatasetSnapshot.objects.create(
        project=project, classes=["positive", "negative"], item_ids=[], values=[], validation_ids=[],
        fingerprint="f",
    )  # fmt: skip
    version = ModelVersion.objects.create(
        project=project, number=7, backend="ngrams", dataset=snapshot, artifact_path="none"
    )
    lease = assignment_next(project=project, annotator=annotator)
    annotation_submit(project=project, item_id=lease.item.pk, annotator=annotator,
                      value={"choices": ["positive"]}, proposal_value={"choices": ["positive"]},
                      proposal_model_version_id=version.pk)  # fmt: skip
    client.force_login(manager)
    assert "v7" in _page(client, project).text
    versions = _api(manager, project, "proposals").json()["versions"]
    assert versions == [
        {"model_version_id": version.pk, "model_version_number": 7, "shown": 1, "accepted": 1, "rate": 1.0}
    ]


def test_htmx_refresh_returns_only_the_charts(client, scenario):
    client.force_login(scenario.manager)
    response = client.get(
        reverse("annotate:dashboards", kwargs={"project_id": scenario.project.pk}),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "annotate/partials/_dashboard_charts.html" in [t.name for t in response.templates]
    assert "<h1>" not in response.text and response.text.count("<svg") == 8


def test_undefined_figures_show_na_on_the_page_and_null_in_the_api(client):
    annotator = UserFactory()
    project = make_project(items=3, members=[(annotator, "annotator")])
    manager = project.memberships.get(role="manager").user
    client.force_login(manager)
    page = _page(client, project).text
    assert "n/a" in page and "no annotations yet" in page
    body = _api(manager, project).json()
    assert body["agreement"]["overall"]["krippendorff_alpha"] is None
    assert body["gold"]["annotators"][0]["accuracy"] is None
    assert body["progress"] == {"total_items": 3, "gold_items": 0, "completed": 0, "days": []}
    assert {row["source"]: row["items"] for row in body["labels"]["sources"]}["none"] == 3


def test_api_returns_each_chart_as_the_combined_endpoint_does(scenario):
    combined = _api(scenario.manager, scenario.project).json()
    assert set(combined) == set(CHARTS)
    for chart in CHARTS:
        one = _api(scenario.manager, scenario.project, chart.replace("_", "-"))
        assert one.status_code == 200
        assert one.json() == combined[chart]
    versions = combined["proposals"]["versions"]
    assert [v["model_version_id"] for v in versions] == [101, 102]
    assert all(v["model_version_number"] is None for v in versions)
    some = _api(scenario.manager, scenario.project, charts="gold,labels-per-day").json()
    assert set(some) == {"gold", "labels_per_day"}


def test_api_refuses_an_unknown_chart_naming_the_field(scenario):
    response = _api(scenario.manager, scenario.project, charts="progress,bogus")
    assert response.status_code == 400
    assert "charts" in response.json() and "bogus" in response.json()["charts"][0]


def test_pages_read_a_bounded_number_of_statements_and_never_the_annotations(client, scenario):
    client.force_login(scenario.manager)
    _page(client, scenario.project)  # sessions, content types: whatever a first request caches

    def measured():
        with CaptureQueriesContext(connection) as page:
            assert _page(client, scenario.project).status_code == 200
        with CaptureQueriesContext(connection) as api:
            assert _api(scenario.manager, scenario.project).status_code == 200
        return page.captured_queries, api.captured_queries

    page_before, api_before = measured()
    before = Annotation.objects.filter(project=scenario.project).count()
    scenario.run(days=[DAYS], cycles=3)  # more annotations, on a new day
    assert Annotation.objects.filter(project=scenario.project).count() > before
    page_after, api_after = measured()
    assert len(page_after) == len(page_before) <= 14
    assert len(api_after) == len(api_before) <= 12
    annotation_table = Annotation._meta.db_table
    for query in page_after + api_after:
        assert annotation_table not in query["sql"], query["sql"]


# --- the charts on their own -------------------------------------------------------------------


@pytest.mark.parametrize("empty", [True, False])
def test_every_chart_is_well_formed_xml_with_a_fixed_size(empty):
    from annotate import dashboards as d
    from annotate.quality.tallies import key

    names = {1: "<script>alert(1)</script>", 2: "bob & co"}
    tallies = {} if empty else {
        "completed_day": {"2026-01-01": 3, "2026-01-03": 2},
        "final_source": {"consensus": 4, "none": 2, "gold": 1},
        "final_label": {"<script>": 3, "dog": 2},
        "labels_day": {key("2026-01-01", 1): 4, key("2026-01-02", 2): 7},
        "seconds": {key(1, 8): 3, key(2, 15): 1},
        "proposal": {key(5, "shown"): 4, key(5, "accepted"): 3},
        "review": {key(1, "accepted"): 2, key(2, "rejected"): 1},
    }  # fmt: skip
    drawn = [
        charts.progress_svg(d._progress(tallies)),
        charts.labels_per_day_svg(d._labels_per_day(tallies, names)),
        charts.seconds_svg(d._seconds(tallies, names)),
        charts.labels_svg(d._labels(tallies, ["dog"])),
        charts.proposals_svg(d._proposals(tallies), {5: "v3 <b>"}),
        charts.reviews_svg(d._reviews(tallies, names)),
    ]
    for svg in drawn:
        root = ET.fromstring(svg)
        assert root.get("width") == "640" and root.get("height").isdigit()
        assert "<script" not in svg and "<b>" not in svg.replace("&lt;b&gt;", "")
        assert not root.findall(".//{http://www.w3.org/2000/svg}script")
    if not empty:
        assert "&lt;script&gt;" in drawn[3] and "v3 &lt;b&gt;" in drawn[4]


@pytest.mark.django_db
def test_the_dashboards_say_how_the_final_labels_are_found_and_when_dawid_skene_last_ran(client):
    from django.utils import timezone

    from annotate.models import Project
    from tests.factories import UserFactory, make_project

    lead = UserFactory()
    project = make_project(items=1, members=[(lead, "manager")])
    client.force_login(lead)
    url = f"/projects/{project.pk}/dashboards/"
    assert "Final labels: the majority vote" in client.get(url).text
    Project.objects.filter(pk=project.pk).update(consensus_method="dawid_skene")
    assert "not computed yet" in client.get(url).text
    Project.objects.filter(pk=project.pk).update(consensus_computed_at=timezone.now())
    assert "Dawid–Skene, last computed" in client.get(url).text
