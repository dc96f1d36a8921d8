"""The item browser: filters against a Python recount, keyset pages with ties, the selection's
actions in one statement, bad input, and who may open it."""

import json
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotate import browser
from annotate.browser import ItemFilters, Proposals, item_filters_parse, item_list_filtered, item_page
from annotate.models import (
    Annotation,
    ExportJob,
    FinalSource,
    Item,
    Label,
    Membership,
    PickKind,
    Project,
    Review,
    ReviewState,
    Tally,
)
from annotate.quality.rebuild import project_quality_rebuild
from annotate.quality.tallies import tallies_read
from annotate.queue import annotation_submit, assignment_next
from tests.factories import AnnotationFactory, UserFactory, make_project
from training.models import DatasetSnapshot, ModelVersion, Prediction

pytestmark = pytest.mark.django_db

LABELS = ("cat", "dog", 'it\'s "bird"')
TEXTS = ["A Cat sat", "the CAT", "concatenate", "a dog", "100% sure", "snake_case", "Ünïcode", "plain"]
VALUES = [None, {"choices": ["cat"]}, {"choices": ["dog"]}, {"choices": ["cat", LABELS[2]]}]
SOURCES = [FinalSource.SINGLE, FinalSource.CONSENSUS, FinalSource.REVIEW]


def _relation() -> str:
    return Prediction.item.field.related_query_name()


def _version(project: Project, number: int, *, active: bool) -> ModelVersion:
    snapshot = DatasetSnapshot.objects.create(
        project=project, classes=list(LABELS), item_ids=[], values=[], validation_ids=[], fingerprint="t"
    )
    return ModelVersion.objects.create(
        project=project, number=number, backend="test", dataset=snapshot, artifact_path="t", is_active=active
    )


class World:
    """A project of 40 items in every state the filters tell apart, with ties in time and score."""

    def __init__(self):
        self.annotators = [UserFactory(), UserFactory(), UserFactory()]
        self.project = make_project(
            labels=LABELS, overlap=2, members=[(a, Membership.Role.ANNOTATOR) for a in self.annotators]
        )
        self.manager = self.project.memberships.get(role=Membership.Role.MANAGER).user
        base = timezone.now() - timedelta(days=1)
        self.items = []
        for i in range(40):
            value = VALUES[i % 4]
            source = FinalSource.NONE if value is None else SOURCES[i % 3]
            if value is None and i % 8 == 4:
                source = FinalSource.TIE
            gold = i % 7 == 0 and value is not None
            item = Item.objects.create(
                project=self.project,
                external_id=f"e{i}",
                text=f"{TEXTS[i % len(TEXTS)]} #{i}",
                final_value=value,
                final_source=FinalSource.GOLD if gold else source,
                disagreement=i % 3 == 0,
                pick_kind=PickKind.GOLD if gold else PickKind.QUEUE,
                gold_value=value if gold else None,
                suspicion=(i % 10) / 10 if i % 5 == 0 else None,
                is_complete=value is not None,
                annotation_count=2 if value is not None else 0,
            )
            self.items.append(item)
        # Four items per timestamp: the time sort has ties; ids inside a tie are not in time order.
        for i, item in enumerate(self.items):
            Item.objects.filter(pk=item.pk).update(created_at=base + timedelta(minutes=(i * 7 % 40) // 4))
        self.items = list(Item.objects.filter(project=self.project).order_by("id"))
        for i, item in enumerate(self.items):
            if i % 2 == 0:
                AnnotationFactory(item=item, annotator=self.annotators[0])
            if i % 3 == 0:
                AnnotationFactory(item=item, annotator=self.annotators[1])
        # Predictions: the active version for items i % 4 != 3 (scores with ties), an older one for all.
        self.old = _version(self.project, 1, active=False)
        self.active = _version(self.project, 2, active=True)
        for i, item in enumerate(self.items):
            Prediction.objects.create(
                item=item, model_version=self.old, value={"choices": ["dog"]}, probabilities=[], score=0.99,
                uncertainty=0,
            )  # fmt: skip
            if i % 4 != 3:
                Prediction.objects.create(
                    item=item, model_version=self.active, value={"choices": [LABELS[i % 3]]},
                    probabilities=[], score=(i % 5) / 5, uncertainty=0,
                )  # fmt: skip
        self.proposals = Proposals(relation=_relation(), model_version_id=self.active.pk)
        self.scores = {
            p.item_id: (p.value, p.score) for p in Prediction.objects.filter(model_version=self.active)
        }
        self.other = make_project(labels=LABELS, items=3)

    def parse(self, **params) -> ItemFilters:
        return item_filters_parse(project=self.project, params=params, proposals=self.proposals)

    def ids(self, **params) -> set[int]:
        return set(
            item_list_filtered(project=self.project, filters=self.parse(**params)).values_list(
                "id", flat=True
            )
        )

    def annotated_by(self, user) -> set[int]:
        return set(Annotation.objects.filter(annotator=user).values_list("item_id", flat=True))


@pytest.fixture
def world():
    return World()


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _list_url(project) -> str:
    return reverse("api:browser", kwargs={"project_id": project.pk})


def _action_url(project) -> str:
    return reverse("api:browser-actions", kwargs={"project_id": project.pk})


# Filters against a Python recount --------------------------------------------------------


def _has(value, label) -> bool:
    return value is not None and label in value.get("choices", [])


RECOUNTS = {
    "labeled=true": ({"labeled": "true"}, lambda w, it: it.final_value is not None),
    "labeled=false": ({"labeled": "false"}, lambda w, it: it.final_value is None),
    "final_label=cat": ({"final_label": "cat"}, lambda w, it: _has(it.final_value, "cat")),
    "final_label with quotes": ({"final_label": LABELS[2]}, lambda w, it: _has(it.final_value, LABELS[2])),
    "final_source=review": ({"final_source": "review"}, lambda w, it: it.final_source == "review"),
    "final_source=tie": ({"final_source": "tie"}, lambda w, it: it.final_source == "tie"),
    "final_source=gold": ({"final_source": "gold"}, lambda w, it: it.final_source == "gold"),
    "annotator": (
        lambda w: {"annotator": str(w.annotators[1].pk)},
        lambda w, it: it.pk in w.annotated_by(w.annotators[1]),
    ),
    "annotator with none": (lambda w: {"annotator": str(w.annotators[2].pk)}, lambda w, it: False),
    "disagreement=true": ({"disagreement": "true"}, lambda w, it: it.disagreement),
    "disagreement=false": ({"disagreement": "false"}, lambda w, it: not it.disagreement),
    "gold=true": ({"gold": "true"}, lambda w, it: it.pick_kind == "gold"),
    "gold=false": ({"gold": "false"}, lambda w, it: it.pick_kind != "gold"),
    "suspicious=true": ({"suspicious": "true"}, lambda w, it: it.suspicion is not None),
    "suspicious=false": ({"suspicious": "false"}, lambda w, it: it.suspicion is None),
    "proposal=dog": ({"proposal": "dog"}, lambda w, it: _has(w.scores.get(it.pk, (None,))[0], "dog")),
    "confidence_min": (
        {"confidence_min": "0.6"},
        lambda w, it: it.pk in w.scores and w.scores[it.pk][1] >= 0.6,
    ),
    "confidence_max": (
        {"confidence_max": "0.2"},
        lambda w, it: it.pk in w.scores and w.scores[it.pk][1] <= 0.2,
    ),
    "proposal and confidence": (
        {"proposal": "cat", "confidence_min": "0.2", "confidence_max": "0.6"},
        lambda w, it: _has(w.scores.get(it.pk, (None,))[0], "cat") and 0.2 <= w.scores[it.pk][1] <= 0.6,
    ),
    "q=cat (any case, inside words)": ({"q": "cat"}, lambda w, it: "cat" in it.text.lower()),
    "q=% is literal": ({"q": "0%"}, lambda w, it: "0%" in it.text),
    "q=_ is literal": ({"q": "e_c"}, lambda w, it: "e_c" in it.text),
    "q + labeled + disagreement": (
        {"q": "CAT", "labeled": "true", "disagreement": "true"},
        lambda w, it: "cat" in it.text.lower() and it.final_value is not None and it.disagreement,
    ),
    "ids": (
        lambda w: {"ids": f"{w.items[1].pk},{w.items[5].pk}"},
        lambda w, it: it in (w.items[1], w.items[5]),
    ),
    "nothing": ({}, lambda w, it: True),
}


@pytest.mark.parametrize("case", RECOUNTS, ids=list(RECOUNTS))
def test_each_filter_matches_a_python_recount(world, case):
    params, keep = RECOUNTS[case]
    params = params(world) if callable(params) else params
    expected = {item.pk for item in world.items if keep(world, item)}
    assert world.ids(**params) == expected
    assert expected or case == "annotator with none"  # the world has items of every kind


def test_the_api_lists_what_the_filter_selects_with_its_count(world):
    params = {"final_label": "cat", "page_size": 100, "count": "true"}
    response = _api(world.manager).get(_list_url(world.project), params)
    assert response.status_code == 200
    body = response.json()
    expected = {item.pk for item in world.items if _has(item.final_value, "cat")}
    assert {row["id"] for row in body["results"]} == expected
    assert body["count"] == len(expected) and body["next"] is None


def test_a_row_shows_the_active_versions_proposal_and_the_items_state(world):
    item = world.items[0]
    rows = _api(world.manager).get(_list_url(world.project), {"ids": str(item.pk)}).json()["results"]
    assert rows[0]["proposal"] == {"value": {"choices": ["cat"]}, "score": 0.0}
    assert (rows[0]["gold"], rows[0]["disagreement"], rows[0]["suspicion"]) == (False, True, 0.0)
    without = world.items[3]  # no prediction of the active version (only of the old one)
    rows = _api(world.manager).get(_list_url(world.project), {"ids": str(without.pk)}).json()["results"]
    assert rows[0]["proposal"] is None


def test_no_other_projects_items_are_listed(world):
    ids = world.ids()
    assert not ids & set(world.other.items.values_list("id", flat=True))


# Keyset pages ----------------------------------------------------------------------------


def _expected_order(world, sort: str) -> list[int]:
    """Time: (created_at, id). Confidence: the scored items by (score, id), then the rest by id;
    both the other way round for a descending sort."""
    descending = sort.startswith("-")
    if sort.endswith("created_at"):
        when = {item.pk: item.created_at for item in world.items}
        return sorted(when, key=lambda pk: (when[pk], pk), reverse=descending)
    scored = sorted(world.scores, key=lambda pk: (world.scores[pk][1], pk), reverse=descending)
    rest = sorted((item.pk for item in world.items if item.pk not in world.scores), reverse=descending)
    return scored + rest


@pytest.mark.parametrize("page_size", [3, 4])
@pytest.mark.parametrize("sort", browser.SORTS)
def test_keyset_pages_never_repeat_or_skip_an_item_with_ties(world, sort, page_size):
    filters = world.parse(sort=sort)
    seen, cursor, pages = [], "", 0
    while True:
        page = item_page(project=world.project, filters=filters, cursor=cursor, page_size=page_size)
        seen += [item.pk for item in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 40
    assert seen == _expected_order(world, sort)
    assert pages == -(-40 // page_size)
    # With 30 scored items, a page of 4 holds the last scored items and the first unscored ones.
    # The ties are real: several items share a time and several share a score.
    assert max(Counter(item.created_at for item in world.items).values()) >= 4
    assert max(Counter(score for _, score in world.scores.values()).values()) >= 4


@pytest.mark.parametrize("sort", ["created_at", "-created_at"])
def test_pages_of_one_import_walk_its_items_although_they_share_one_time(sort):
    project = make_project(items=30)
    items = list(Item.objects.filter(project=project).order_by("id"))
    Item.objects.filter(project=project).update(created_at=items[0].created_at)
    filters = item_filters_parse(project=project, params={"sort": sort})
    seen, cursor = [], ""
    while cursor is not None:
        page = item_page(project=project, filters=filters, cursor=cursor, page_size=7)
        seen += [item.pk for item in page.items]
        cursor = page.next_cursor
    assert seen == sorted((item.pk for item in items), reverse=sort.startswith("-"))


def test_following_next_through_the_api_walks_every_filtered_item_once(world):
    client = _api(world.manager)
    expected = [pk for pk in _expected_order(world, "-confidence") if pk in world.ids(labeled="true")]
    url, seen = _list_url(world.project) + "?labeled=true&sort=-confidence&page_size=4", []
    counts = []
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        counts.append(body["count"])
        url = body["next"]
    assert seen == expected
    assert set(counts) == {None}  # not asked for
    first = client.get(_list_url(world.project), {"labeled": "true", "count": "true"}).json()
    assert first["count"] == len(expected)


@pytest.mark.parametrize("sort", ["created_at", "-confidence"])
def test_a_page_is_one_query_for_one_page_of_rows(world, sort):
    filters = world.parse(labeled="true", sort=sort)
    first = item_page(project=world.project, filters=filters, page_size=5)
    with CaptureQueriesContext(connection) as queries:
        item_page(project=world.project, filters=filters, cursor=first.next_cursor, page_size=5)
    assert len(queries) == 1  # no count: the page asks for it apart
    assert "LIMIT 6" in queries[0]["sql"]


def test_the_count_fragment_counts_what_the_filters_select(client, world):
    client.force_login(world.manager)
    response = client.get(reverse("annotate:browser-count", args=[world.project.pk]), {"q": "cat"})
    expected = sum("cat" in item.text.lower() for item in world.items)
    assert response.status_code == 200 and response.text.strip() == f"{expected} matching"
    bad = client.get(reverse("annotate:browser-count", args=[world.project.pk]), {"gold": "sometimes"})
    assert bad.status_code == 400 and "gold" in bad.text


# Bad input -------------------------------------------------------------------------------

BAD = [
    ({"labeled": "maybe"}, "labeled"),
    ({"disagreement": "2"}, "disagreement"),
    ({"final_label": "unicorn"}, "final_label"),
    ({"proposal": "unicorn"}, "proposal"),
    ({"final_source": "guess"}, "final_source"),
    ({"annotator": "bob"}, "annotator"),
    ({"annotator": "-3"}, "annotator"),
    ({"annotator": "99999999999999999999999"}, "annotator"),
    ({"confidence_min": "1.5"}, "confidence_min"),
    ({"confidence_max": "nan"}, "confidence_max"),
    ({"confidence_min": "0.9", "confidence_max": "0.1"}, "confidence_min"),
    ({"sort": "priority"}, "sort"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "WyJjb25maWRlbmNlIiwwLjUsM10"}, "cursor"),  # a confidence cursor, sorted by time
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "many"}, "page_size"),
    ({"page_size": "201"}, "page_size"),
    ({"count": "perhaps"}, "count"),
    ({"q": "a\x00b"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"ids": "1,a"}, "ids"),
]


@pytest.mark.parametrize(("params", "name"), BAD, ids=[f"{name}-{i}" for i, (_, name) in enumerate(BAD)])
def test_a_bad_filter_value_answers_400_naming_the_parameter(world, params, name):
    response = _api(world.manager).get(_list_url(world.project), params)
    assert response.status_code == 400, response.content
    assert name in response.json()


def test_the_page_answers_400_with_the_parameter_named(client, world):
    client.force_login(world.manager)
    response = client.get(reverse("annotate:browser", args=[world.project.pk]), {"final_source": "guess"})
    assert response.status_code == 400
    assert "final_source: must be one of" in response.text


def test_proposal_filters_and_the_confidence_sort_need_a_model(world):
    ModelVersion.objects.filter(project=world.project).update(is_active=False)
    client = _api(world.manager)
    for params, name in [({"proposal": "cat"}, "proposal"), ({"confidence_min": "0.1"}, "confidence_min"),
                         ({"sort": "confidence"}, "sort")]:  # fmt: skip
        response = client.get(_list_url(world.project), params)
        assert response.status_code == 400 and "no active model" in response.json()[name][0]
    rows = client.get(_list_url(world.project), {"page_size": 1}).json()["results"]
    assert rows[0]["proposal"] is None


def test_a_stored_selection_with_an_unknown_filter_is_refused():
    project = make_project(items=2)
    with pytest.raises(browser.ValidationError) as refused:
        browser.items_filtered(project=project, filters={"lable": "cat"})
    assert "lable" in refused.value.message_dict
    assert browser.items_filtered(project=project, filters={}).count() == 2


# Roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "code"), [(Membership.Role.ANNOTATOR, 403), (Membership.Role.REVIEWER, 403), (None, 404)]
)
def test_only_managers_may_browse_or_act(world, role, code, client):
    user = UserFactory()
    if role is not None:
        Membership.objects.create(project=world.project, user=user, role=role)
    api = _api(user)
    item = world.items[1]
    assert api.get(_list_url(world.project)).status_code == code
    assert (
        api.get(
            reverse("api:browser-item", kwargs={"project_id": world.project.pk, "item_id": item.pk})
        ).status_code
        == code
    )
    body = {"action": "review", "selection": {"ids": [item.pk]}}
    assert api.post(_action_url(world.project), body, format="json").status_code == code
    client.force_login(user)
    assert client.get(reverse("annotate:browser", args=[world.project.pk])).status_code == code
    assert client.get(reverse("annotate:browser-item", args=[world.project.pk, item.pk])).status_code == code
    page_post = client.post(
        reverse("annotate:browser-action", args=[world.project.pk]), {"action": "review", "ids": [item.pk]}
    )
    assert page_post.status_code == code
    assert Item.objects.get(pk=item.pk).review_state == ReviewState.NONE


def test_anonymous_requests_are_refused(world, client):
    assert APIClient().get(_list_url(world.project)).status_code == 401
    response = client.get(reverse("annotate:browser", args=[world.project.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# Actions ---------------------------------------------------------------------------------


def _item_updates(queries) -> list[str]:
    table = Item._meta.db_table
    return [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().upper().startswith(("UPDATE", "WITH")) and table in q["sql"]
    ]


def test_send_to_review_changes_exactly_the_selected_items_in_one_update(world):
    chosen = world.items[:12]
    body = {"action": "review", "selection": {"ids": [item.pk for item in chosen]}}
    with CaptureQueriesContext(connection) as queries:
        response = _api(world.manager).post(_action_url(world.project), body, format="json")
    assert response.status_code == 200, response.content
    assert len(_item_updates(queries)) == 1
    # Gold items are never reviewed; an item neither complete nor reviewed cannot be decided yet.
    expected = {item.pk for item in chosen if item.pick_kind != "gold" and item.is_complete}
    queued = set(
        Item.objects.filter(project=world.project, review_state="queued").values_list("id", flat=True)
    )
    assert queued == expected
    assert response.json()["changed"] == len(expected)
    assert response.json()["skipped"] == len(chosen) - len(expected)


def test_send_to_review_of_all_matching_applies_the_filters(world):
    body = {"action": "review", "selection": {"filters": {"disagreement": True, "labeled": "true"}}}
    response = _api(world.manager).post(_action_url(world.project), body, format="json")
    assert response.status_code == 200, response.content
    expected = {
        it.pk
        for it in world.items
        if it.disagreement and it.final_value is not None and it.pick_kind != "gold"
    }
    queued = set(Item.objects.filter(review_state="queued").values_list("id", flat=True))
    assert queued == expected
    assert not Item.objects.filter(project=world.other, review_state="queued").exists()


def _labeled_project():
    """Real submits, so the tallies are the studio's own: six items at overlap 2 become
    consensus, consensus, consensus, tie, single and unlabeled."""
    annotators = [UserFactory(), UserFactory()]
    project = make_project(labels=("cat", "dog"), items=6, overlap=2,
                           members=[(a, Membership.Role.ANNOTATOR) for a in annotators])  # fmt: skip
    answers = [["cat", "dog", "cat", "dog", "cat"], ["cat", "dog", "cat", "cat"]]
    for annotator, labels in zip(annotators, answers, strict=True):
        for label in labels:
            lease = assignment_next(project=project, annotator=annotator)
            item_id = lease.assignment.item_id
            annotation_submit(
                project=project, item_id=item_id, annotator=annotator, value={"choices": [label]}
            )
    return project


def _rebuilt_tallies(project) -> dict:
    models = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}
    project_quality_rebuild(project=project, models=models)
    return tallies_read(project_id=project.pk, kinds=["final_source", "final_label"])


def test_mark_gold_makes_the_selection_gold_in_one_update_and_keeps_the_tallies(client):
    project = _labeled_project()
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    labeled = list(Item.objects.filter(project=project, final_value__isnull=False).order_by("id"))
    assert [i.final_source for i in labeled] == ["consensus", "consensus", "consensus", "single"]
    chosen = [labeled[0], labeled[1], labeled[3]]
    before = {item.pk: item for item in Item.objects.filter(project=project)}
    body = {"action": "gold", "selection": {"ids": [item.pk for item in chosen]}}
    with CaptureQueriesContext(connection) as queries:
        response = _api(manager).post(_action_url(project), body, format="json")
    assert response.status_code == 200, response.content
    assert len(_item_updates(queries)) == 1
    for item in Item.objects.filter(project=project):
        if item.pk in {c.pk for c in chosen}:
            assert (item.pick_kind, item.final_source, item.is_complete) == ("gold", "gold", True)
            assert item.gold_value == item.final_value == before[item.pk].final_value
            assert item.review_state == ReviewState.NONE
        else:
            assert (item.pick_kind, item.final_source) == ("queue", before[item.pk].final_source)
    kept = tallies_read(project_id=project.pk, kinds=["final_source", "final_label"])
    assert kept == _rebuilt_tallies(project)
    # Marking them again changes nothing, and says so.
    again = _api(manager).post(_action_url(project), body, format="json").json()
    assert (again["changed"], again["skipped"]) == (0, 3)
    assert tallies_read(project_id=project.pk, kinds=["final_source"]) == {
        "final_source": kept["final_source"]
    }


def test_mark_gold_refuses_items_without_a_final_label_and_changes_nothing():
    project = _labeled_project()
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    before = list(Item.objects.filter(project=project).order_by("id").values())
    tallies = list(Tally.objects.filter(project=project).order_by("id").values())
    body = {"action": "gold", "selection": {"filters": {}}}
    response = _api(manager).post(_action_url(project), body, format="json")
    assert response.status_code == 400
    assert "2 items of the selection have no final label" in response.json()["selection"][0]
    assert list(Item.objects.filter(project=project).order_by("id").values()) == before
    assert list(Tally.objects.filter(project=project).order_by("id").values()) == tallies


def test_mark_gold_of_all_labeled_items_by_filter(world):
    body = {"action": "gold", "selection": {"filters": {"labeled": "true", "q": "cat"}}}
    response = _api(world.manager).post(_action_url(world.project), body, format="json")
    assert response.status_code == 200, response.content
    expected = {it.pk for it in world.items if it.final_value is not None and "cat" in it.text.lower()}
    gold = set(Item.objects.filter(project=world.project, pick_kind="gold").values_list("id", flat=True))
    already = {it.pk for it in world.items if it.pick_kind == "gold"}
    assert gold == expected | already
    assert response.json()["changed"] == len(expected - already)


def test_export_stores_the_selection_that_items_filtered_reads_back(
    world, django_capture_on_commit_callbacks
):
    filters = {"labeled": "true", "proposal": "cat", "sort": "confidence"}
    body = {"action": "export", "format": "csv", "selection": {"filters": filters}}
    with django_capture_on_commit_callbacks() as callbacks:
        response = _api(world.manager).post(_action_url(world.project), body, format="json")
    assert response.status_code == 202, response.content
    assert len(callbacks) == 1  # the export task, sent once the job (with its selection) is stored
    job = ExportJob.objects.get(pk=response.json()["job"]["id"])
    assert response["Location"] == response.json()["job"]["url"]
    assert job.format == "csv"
    assert job.selection == {
        "labeled": True,
        "proposal": "cat",
        "proposals": {"relation": _relation(), "model_version": world.active.pk},
    }
    expected = world.ids(labeled="true", proposal="cat")
    # Read back later, it still means the version the lead saw, whichever is active then.
    ModelVersion.objects.filter(pk=world.active.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=world.old.pk).update(is_active=True)
    stored = browser.items_filtered(project=world.project, filters=job.selection)
    assert set(stored.values_list("id", flat=True)) == expected


@pytest.mark.parametrize(
    "selection",
    [
        {"filters": {"labeled": "true", "proposal": "cat"}},
        {"filters": {"q": "CAT"}},
        {"filters": {"final_label": "cat", "disagreement": False}},
        "ids",
    ],
    ids=["proposal filter", "search", "final label", "ids"],
)
def test_the_exporter_writes_exactly_the_selected_items(world, selection):
    from annotate import exporting

    if selection == "ids":
        selection = {"ids": [item.pk for item in world.items[5:9]]}
        expected = {item.external_id for item in world.items[5:9]}
    else:
        ids = world.ids(**selection["filters"])
        expected = {item.external_id for item in world.items if item.pk in ids}
    body = {"action": "export", "format": "jsonl", "selection": selection}
    response = _api(world.manager).post(_action_url(world.project), body, format="json")
    job = exporting.item_export_run_job(job_id=response.json()["job"]["id"])
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    lines = job.file.open("rb").read().decode().splitlines()
    assert {json.loads(line)["external_id"] for line in lines} == expected
    assert job.items_written == len(expected) == response.json()["changed"]


def test_export_of_ticked_items_stores_their_ids(world):
    chosen = sorted(item.pk for item in world.items[3:6])
    body = {"action": "export", "selection": {"ids": chosen}}
    response = _api(world.manager).post(_action_url(world.project), body, format="json")
    job = ExportJob.objects.get(pk=response.json()["job"]["id"])
    assert job.selection == {"ids": chosen}
    assert set(
        browser.items_filtered(project=world.project, filters=job.selection).values_list("id", flat=True)
    ) == set(chosen)


BAD_ACTIONS = [
    ({"action": "delete", "selection": {"ids": [1]}}, "action"),
    ({"action": "review", "selection": {}}, "selection"),
    ({"action": "review", "selection": {"ids": [], "filters": {}}}, "selection"),
    ({"action": "review", "selection": {"filters": {"lable": "cat"}}}, "filters.lable"),
    ({"action": "review", "selection": {"filters": {"labeled": "perhaps"}}}, "filters.labeled"),
    ({"action": "review", "selection": {"ids": []}}, "ids"),
    ({"action": "export", "format": "xml", "selection": {"ids": [1]}}, "format"),
    ({"action": "review"}, "selection"),
]


@pytest.mark.parametrize(("body", "name"), BAD_ACTIONS, ids=[n for _, n in BAD_ACTIONS])
def test_a_bad_action_request_answers_400_naming_the_field_and_changes_nothing(world, body, name):
    response = _api(world.manager).post(_action_url(world.project), body, format="json")
    assert response.status_code == 400, response.content
    assert name in str(response.json())
    assert not Item.objects.filter(review_state="queued").exists() and not ExportJob.objects.exists()


def test_ids_of_another_projects_items_are_refused_and_nothing_changes(world):
    foreign = world.other.items.first()
    body = {"action": "review", "selection": {"ids": [world.items[1].pk, foreign.pk]}}
    response = _api(world.manager).post(_action_url(world.project), body, format="json")
    assert response.status_code == 400
    assert "1 of these ids are not items of this project" in response.json()["ids"][0]
    assert not Item.objects.filter(review_state="queued").exists()


def test_the_pages_action_form_acts_on_all_matching_and_says_what_it_did(client, world):
    client.force_login(world.manager)
    url = reverse("annotate:browser-action", args=[world.project.pk])
    response = client.post(
        url,
        {"action": "review", "scope": "all", "filters": "disagreement=true&sort=-created_at"},
        follow=True,
    )
    assert response.status_code == 200
    expected = {it.pk for it in world.items if it.disagreement and it.is_complete and it.pick_kind != "gold"}
    assert set(Item.objects.filter(review_state="queued").values_list("id", flat=True)) == expected
    assert f"Sent {len(expected)} items to review." in response.text
    assert response.redirect_chain[-1][0].endswith("?disagreement=true&sort=-created_at")


def test_the_pages_action_form_without_a_selection_answers_400(client, world):
    client.force_login(world.manager)
    url = reverse("annotate:browser-action", args=[world.project.pk])
    response = client.post(url, {"action": "gold", "filters": "labeled=true"})
    assert response.status_code == 400
    assert "tick some items" in response.text


def test_the_pages_export_goes_to_the_job(client, world):
    client.force_login(world.manager)
    url = reverse("annotate:browser-action", args=[world.project.pk])
    ids = [world.items[2].pk, world.items[4].pk]
    response = client.post(url, {"action": "export", "format": "jsonl", "ids": ids})
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "annotate:export-job", args=[world.project.pk, job.pk]
    )
    assert job.selection == {"ids": sorted(ids)} and job.format == "jsonl"


# Pages and the item ----------------------------------------------------------------------


def test_the_page_shows_the_filtered_table_and_the_next_page(client, world):
    client.force_login(world.manager)
    url = reverse("annotate:browser", args=[world.project.pk])
    response = client.get(url, {"gold": "true"})
    assert response.status_code == 200
    assert "annotate/browser.html" in [t.name for t in response.templates]
    gold = [it for it in world.items if it.pick_kind == "gold"]
    assert reverse("annotate:browser-count", args=[world.project.pk]) + "?gold=true" in response.text
    assert len(response.context["page"].items) == len(gold)
    assert all(f">{it.external_id}</a>" in response.text for it in gold)
    partial = client.get(url, {"labeled": "true"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="browser-results")
    assert [t.name for t in partial.templates][0] == "annotate/partials/_browser_table.html"
    assert "<h1>" not in partial.text


def test_the_page_walks_pages_with_its_next_link(client, world):
    client.force_login(world.manager)
    url = reverse("annotate:browser", args=[world.project.pk])
    seen, query = [], "?sort=confidence&page_size=7"
    for _ in range(10):
        response = client.get(url + query)
        page = response.context["page"]
        seen += [item.pk for item in page.items]
        if response.context["next_url"] is None:
            break
        query = response.context["next_url"]
    assert seen == _expected_order(world, "confidence")
    assert response.context["page_number"] == 6


def test_the_project_page_links_managers_to_the_items(client, world):
    client.force_login(world.manager)
    response = client.get(reverse("annotate:project", args=[world.project.pk]))
    assert reverse("annotate:browser", args=[world.project.pk]) in response.text
    client.force_login(world.annotators[0])
    response = client.get(reverse("annotate:project", args=[world.project.pk]))
    assert reverse("annotate:browser", args=[world.project.pk]) not in response.text


def _reviewed(world) -> Item:
    item = world.items[6]
    annotation = Annotation.objects.filter(item=item).first()
    reviewer = UserFactory(username="rita")
    Review.objects.create(
        project=world.project, item=item, reviewer=reviewer, decision=Review.Decision.REJECT,
        annotation=annotation, reason="not a cat", created_at=timezone.now(),
    )  # fmt: skip
    Annotation.objects.filter(pk=annotation.pk).update(active_ms=2500)
    return item


def test_an_opened_item_shows_its_annotations_reviews_and_proposal_in_the_api(world):
    item = _reviewed(world)
    url = reverse("api:browser-item", kwargs={"project_id": world.project.pk, "item_id": item.pk})
    body = _api(world.manager).get(url).json()
    annotations = Annotation.objects.filter(item=item).order_by("id")
    assert [(a["annotator"], a["value"], a["active_ms"]) for a in body["annotations"]] == [
        (a.annotator.username, a.value, a.active_ms) for a in annotations
    ]
    assert body["annotations"][0]["active_ms"] == 2500
    assert [(r["reviewer"], r["decision"], r["reason"]) for r in body["reviews"]] == [
        ("rita", "reject", "not a cat")
    ]
    assert body["reviews"][0]["annotator"] == annotations[0].annotator.username
    assert body["proposal"]["value"] == world.scores[item.pk][0]
    assert body["proposal"]["model_version_number"] == 2
    other = world.other.items.first()
    missing = reverse("api:browser-item", kwargs={"project_id": world.project.pk, "item_id": other.pk})
    assert _api(world.manager).get(missing).status_code == 404


def test_an_opened_item_page_and_its_htmx_panel(client, world):
    item = _reviewed(world)
    client.force_login(world.manager)
    url = reverse("annotate:browser-item", args=[world.project.pk, item.pk])
    page = client.get(url)
    assert page.status_code == 200 and "annotate/browser_item.html" in [t.name for t in page.templates]
    assert "not a cat" in page.text and "2.5 s" in page.text and "model v2" in page.text
    panel = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="browser-item")
    assert [t.name for t in panel.templates][0] == "annotate/partials/_browser_item.html"
