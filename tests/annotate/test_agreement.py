"""Agreement figures read from the tallies, checked against the reference implementations.

The references (krippendorff, scikit-learn, statsmodels) get the raw votes; agreement.py gets only
the tallies those votes add up to. Categories for the references are derived here, independently
of annotate.quality.votes.categories.
"""

import random
import warnings
from collections import Counter
from datetime import timedelta
from itertools import combinations

import krippendorff
import numpy as np
import pytest
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from annotate.models import Annotation, Membership
from annotate.quality.agreement import (
    agreement_from_tallies,
    cohen_kappa,
    fleiss_kappa,
    format_measure,
    krippendorff_alpha,
    percent_agreement,
    project_agreement,
)
from annotate.quality.tallies import key
from annotate.quality.votes import agreement_tallies
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project

TOLERANCE = 1e-9


# --- references over raw votes ------------------------------------------------------------------


def _category(value: dict, scope: str, *, multi_label: bool):
    choices = value["choices"]
    if not multi_label:
        return choices[0]
    if scope == "":
        return "|".join(sorted(choices)) + "#"  # any one-to-one coding of the set will do
    return "yes" if scope in choices else "no"


def _coded(items: list[dict], scope: str, *, multi_label: bool) -> list[dict[int, int]]:
    """Per item, {annotator: category code}; codes numbered in order of first appearance."""
    codes: dict = {}
    coded = []
    for votes in items:
        row = {}
        for annotator, value in votes.items():
            category = _category(value, scope, multi_label=multi_label)
            row[annotator] = codes.setdefault(category, len(codes))
        coded.append(row)
    return coded


def _undefined_is_none(compute):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            value = float(compute())
        except (ValueError, ZeroDivisionError):
            return None
    return None if np.isnan(value) or np.isinf(value) else value


def reference_alpha(coded: list[dict[int, int]]) -> float | None:
    annotators = sorted({a for row in coded for a in row})
    if not annotators:
        return None
    data = np.full((len(annotators), len(coded)), np.nan)
    for j, row in enumerate(coded):
        for a, code in row.items():
            data[annotators.index(a), j] = code
    return _undefined_is_none(
        lambda: krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    )


def reference_fleiss(coded: list[dict[int, int]], m: int) -> tuple[float | None, int]:
    rows = [sorted(row.values()) for row in coded if len(row) == m]
    if not rows or m < 2:
        return None, 0
    table, _ = aggregate_raters(np.array(rows))
    return _undefined_is_none(lambda: sm_fleiss_kappa(table, method="fleiss")), len(rows)


def reference_cohen(coded: list[dict[int, int]], a: int, b: int) -> tuple[float | None, int, float]:
    both = [(row[a], row[b]) for row in coded if a in row and b in row]
    y1, y2 = [x for x, _ in both], [y for _, y in both]
    agreed = sum(x == y for x, y in both) / len(both)
    return _undefined_is_none(lambda: cohen_kappa_score(y1, y2)), len(both), agreed


def reference_percent(coded: list[dict[int, int]]) -> float | None:
    pairs = [(row[u], row[v]) for row in coded for u in row for v in row if u != v]
    return sum(x == y for x, y in pairs) / len(pairs) if pairs else None


def assert_close(ours, reference, what):
    if reference is None:
        assert ours is None, f"{what}: {ours} where the reference is undefined"
    else:
        assert ours is not None, f"{what}: None where the reference gives {reference}"
        assert abs(ours - reference) <= TOLERANCE, f"{what}: {ours} != {reference}"


def assert_matches_references(agreement_for, items: list[dict], *, multi_label: bool, label_names, fleiss_ms):
    """Every figure that `agreement_for(m)` (the agreement, Fleiss' kappa over m voters) gives,
    against the references on the raw votes of `items`."""
    agreement = agreement_for(fleiss_ms[0])
    scopes = [""] + (list(label_names) if multi_label else [])
    assert [s.scope for s in agreement.scopes] == scopes
    pairable = [votes for votes in items if len(votes) >= 2]
    position = {annotator.id: i for i, annotator in enumerate(agreement.annotators)}
    for scope in scopes:
        figures = agreement.scope(scope)
        coded = _coded(items, scope, multi_label=multi_label)
        assert figures.items == len(pairable)
        assert figures.pairs == sum(len(v) * (len(v) - 1) for v in pairable)
        assert_close(figures.percent_agreement, reference_percent(coded), f"percent[{scope!r}]")
        assert_close(figures.krippendorff_alpha, reference_alpha(coded), f"alpha[{scope!r}]")
        expected_pairs = sorted(
            (a, b)
            for a, b in combinations(sorted({a for row in coded for a in row}), 2)
            if any(a in row and b in row for row in coded)
        )
        assert [(p.annotator_a, p.annotator_b) for p in figures.pair_figures] == expected_pairs
        for pair in figures.pair_figures:
            kappa, both, agreed = reference_cohen(coded, pair.annotator_a, pair.annotator_b)
            assert pair.items == both
            assert_close(pair.percent_agreement, agreed, f"pair percent[{scope!r}]")
            assert_close(pair.cohen_kappa, kappa, f"cohen[{scope!r}, {pair.annotator_a}-{pair.annotator_b}]")
            i, j = position[pair.annotator_a], position[pair.annotator_b]
            assert figures.kappa_matrix[i][j] == figures.kappa_matrix[j][i] == pair.cohen_kappa
    for m in fleiss_ms:
        for figures in agreement_for(m).scopes:
            reference, covered = reference_fleiss(_coded(items, figures.scope, multi_label=multi_label), m)
            assert (figures.fleiss_m, figures.fleiss_items) == (m, covered)
            assert_close(figures.fleiss_kappa, reference, f"fleiss[{figures.scope!r}, m={m}]")


# --- (1) tallies built directly from seeded random votes ----------------------------------------


def tallies_of(items: list[dict], *, multi_label: bool, label_names) -> dict[str, dict[str, int]]:
    """What the submits of these votes leave in the Tally table, in tallies_read's shape."""
    total: Counter = Counter()
    for votes in items:
        total.update(agreement_tallies(votes, multi_label=multi_label, label_names=label_names))
    found: dict[str, dict[str, int]] = {"coincidence": {}, "pair": {}}
    for (kind, k), n in total.items():
        if n:
            found[kind][k] = n
    return found


def random_items(seed: int, *, multi_label: bool, labels) -> list[dict]:
    """Items with 0 to 5 voters among 6 annotators of different reliability, seeded."""
    rng = random.Random(seed)
    accuracy = {a: rng.uniform(0.4, 0.95) for a in range(1, 7)}
    items = []
    for _ in range(rng.randint(5, 60)):
        voters = rng.sample(sorted(accuracy), rng.choice([0, 1, 2, 2, 3, 3, 3, 3, 4, 5]))
        truth = {name for name in labels if rng.random() < 0.4} if multi_label else rng.choice(labels)
        votes = {}
        for a in voters:
            if multi_label:
                chosen = {n for n in labels if (n in truth) == (rng.random() < accuracy[a])}
                votes[a] = {"choices": [n for n in labels if n in chosen]}
            else:
                label = truth if rng.random() < accuracy[a] else rng.choice(labels)
                votes[a] = {"choices": [label]}
        items.append(votes)
    return items


@pytest.mark.parametrize("seed", range(40))
def test_single_label_figures_from_tallies_match_the_reference_implementations(seed):
    labels = ["cat", "dog", "bird", "fish"][: 2 + seed % 3]
    items = random_items(seed, multi_label=False, labels=labels)
    tallies = tallies_of(items, multi_label=False, label_names=labels)
    assert_matches_references(
        lambda m: agreement_from_tallies(tallies, multi_label=False, label_names=labels, fleiss_m=m),
        items,
        multi_label=False,
        label_names=labels,
        fleiss_ms=(3, 2, 4),
    )


@pytest.mark.parametrize("seed", range(25))
def test_multi_label_figures_per_label_from_tallies_match_the_reference_implementations(seed):
    labels = ["red", "green", "blue, or teal", 'say "hi"'][: 2 + seed % 3]
    items = random_items(1000 + seed, multi_label=True, labels=labels)
    tallies = tallies_of(items, multi_label=True, label_names=labels)
    assert_matches_references(
        lambda m: agreement_from_tallies(tallies, multi_label=True, label_names=labels, fleiss_m=m),
        items,
        multi_label=True,
        label_names=labels,
        fleiss_ms=(3, 2),
    )


def test_alpha_matches_krippendorffs_own_example_with_missing_ratings():
    nan = None
    data = [
        [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
        [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
        [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
    ]
    items = [
        {coder + 1: {"choices": [str(row[j])]} for coder, row in enumerate(data) if row[j] is not None}
        for j in range(15)
    ]
    labels = ["1", "2", "3", "4"]
    alpha = (
        agreement_from_tallies(
            tallies_of(items, multi_label=False, label_names=labels),
            multi_label=False,
            label_names=labels,
            fleiss_m=3,
        )
        .scope("")
        .krippendorff_alpha
    )
    assert round(alpha, 6) == 0.691358


def test_tallies_left_after_a_voter_changes_give_the_figures_of_the_final_votes():
    labels = ["cat", "dog"]
    before = {1: {"choices": ["cat"]}, 2: {"choices": ["cat"]}, 3: {"choices": ["dog"]}}
    after = {1: {"choices": ["dog"]}, 2: {"choices": ["cat"]}, 3: {"choices": ["dog"]}}
    other = {1: {"choices": ["cat"]}, 2: {"choices": ["dog"]}}
    total = Counter()
    for votes in (before, other):
        total.update(agreement_tallies(votes, multi_label=False, label_names=labels))
    total.subtract(agreement_tallies(before, multi_label=False, label_names=labels))
    total.update(agreement_tallies(after, multi_label=False, label_names=labels))
    tallies = {"coincidence": {}, "pair": {}}
    for (kind, k), n in total.items():
        tallies[kind][k] = n  # zero counts included, as a stale row would be
    changed = agreement_from_tallies(tallies, multi_label=False, label_names=labels, fleiss_m=3)
    fresh = agreement_from_tallies(
        tallies_of([after, other], multi_label=False, label_names=labels),
        multi_label=False,
        label_names=labels,
        fleiss_m=3,
    )
    assert changed == fresh


# --- undefined figures --------------------------------------------------------------------------


def test_no_pairs_gives_none_everywhere_and_pages_show_n_a():
    agreement = agreement_from_tallies({}, multi_label=True, label_names=["a", "b"], fleiss_m=2)
    assert [s.scope for s in agreement.scopes] == ["", "a", "b"]
    for figures in agreement.scopes:
        measures = (figures.percent_agreement, figures.krippendorff_alpha, figures.fleiss_kappa)
        assert measures == (None, None, None)
        assert (figures.items, figures.pairs, figures.fleiss_items) == (0, 0, 0)
        assert [format_measure(v) for v in measures] == ["n/a"] * 3
        assert figures.pair_figures == () and figures.kappa_matrix == ()
    assert agreement.annotators == ()


def test_everyone_choosing_one_label_leaves_kappas_and_alpha_undefined_but_agreement_full():
    labels = ["cat", "dog"]
    items = [{1: {"choices": ["cat"]}, 2: {"choices": ["cat"]}, 3: {"choices": ["cat"]}}] * 4
    figures = agreement_from_tallies(
        tallies_of(items, multi_label=False, label_names=labels),
        multi_label=False,
        label_names=labels,
        fleiss_m=3,
    ).scope("")
    assert figures.percent_agreement == 1.0 and format_measure(figures.percent_agreement) == "1.000"
    assert (figures.krippendorff_alpha, figures.fleiss_kappa, figures.fleiss_items) == (None, None, 4)
    assert {p.cohen_kappa for p in figures.pair_figures} == {None}
    assert {p.percent_agreement for p in figures.pair_figures} == {1.0}
    assert format_measure(figures.fleiss_kappa) == "n/a"


def test_measures_are_none_on_empty_or_degenerate_counts():
    assert percent_agreement({}) is None
    assert krippendorff_alpha({}) is None
    assert krippendorff_alpha({(2, "a", "a"): 2}) is None  # one category
    assert fleiss_kappa({(2, "a", "b"): 1, (2, "b", "a"): 1}, m=1) == (None, 0)
    assert fleiss_kappa({(2, "a", "b"): 1, (2, "b", "a"): 1}, m=3) == (None, 0)
    assert cohen_kappa({}) is None
    assert cohen_kappa({("a", "a"): 5}) is None


def test_complete_disagreement_is_a_negative_figure_not_none():
    figures = agreement_from_tallies(
        tallies_of(
            [{1: {"choices": ["a"]}, 2: {"choices": ["b"]}}, {1: {"choices": ["b"]}, 2: {"choices": ["a"]}}],
            multi_label=False,
            label_names=["a", "b"],
        ),
        multi_label=False,
        label_names=["a", "b"],
        fleiss_m=2,
    ).scope("")
    assert figures.percent_agreement == 0.0 and format_measure(figures.percent_agreement) == "0.000"
    assert figures.pair_figures[0].cohen_kappa == -1.0
    assert figures.krippendorff_alpha < 0 and figures.fleiss_kappa < 0


def test_format_measure_gives_three_decimals():
    assert [format_measure(v) for v in (0.8124, 0.8125001, -0.25, 1.0, None)] == [
        "0.812",
        "0.813",
        "-0.250",
        "1.000",
        "n/a",
    ]


def test_keys_of_another_shape_and_negative_counts_are_left_out():
    labels = ["a", "b"]
    items = [{1: {"choices": ["a"]}, 2: {"choices": ["b"]}}, {1: {"choices": ["a"]}, 2: {"choices": ["a"]}}]
    clean = tallies_of(items, multi_label=False, label_names=labels)
    noisy = {
        "coincidence": {
            **clean["coincidence"],
            "not json": 3,
            key("", 2, "a"): 4,
            key("", 2, "b", "b"): -7,
            key("", "2", "a", "a"): 2,
        },
        "pair": {**clean["pair"], key("x", 2, "", "a", "a"): 5, key(1, 2, "", "b", "b"): -1},
    }
    as_read = dict(multi_label=False, label_names=labels, fleiss_m=2)
    assert agreement_from_tallies(noisy, **as_read) == agreement_from_tallies(clean, **as_read)


# --- (2) end to end through the queue's services ------------------------------------------------


def _value(rng: random.Random, *, truth, labels, multi_label: bool, accuracy: float) -> dict:
    if multi_label:
        return {"choices": [n for n in labels if (n in truth) == (rng.random() < accuracy)]}
    return {"choices": [truth if rng.random() < accuracy else rng.choice(labels)]}


def _votes_read_back(project) -> dict[int, dict]:
    """Per item, each voter's latest value: the annotators with a counted annotation, their last one."""
    latest: dict[int, dict[int, dict]] = {}
    voters: dict[int, set[int]] = {}
    for item_id, annotator_id, value, counted in (
        Annotation.objects.filter(project=project)
        .order_by("id")
        .values_list("item_id", "annotator_id", "value", "counted")
    ):
        latest.setdefault(item_id, {})[annotator_id] = value
        if counted:
            voters.setdefault(item_id, set()).add(annotator_id)
    return {
        item_id: {a: v for a, v in values.items() if a in voters.get(item_id, set())}
        for item_id, values in latest.items()
    }


@pytest.mark.django_db
@pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
def test_project_agreement_after_real_submits_matches_the_references_on_the_stored_votes(multi_label):
    labels = ["cat", "dog", "bird"]
    users = [UserFactory() for _ in range(5)]
    late_user = UserFactory()
    project = make_project(
        labels=labels,
        items=12,
        overlap=3,
        lease_seconds=60,
        multi_label=multi_label,
        members=[(u, Membership.Role.ANNOTATOR) for u in [*users, late_user]],
    )
    rng = random.Random(13 if multi_label else 7)
    truth = {
        item.pk: ({n for n in labels if rng.random() < 0.5} if multi_label else rng.choice(labels))
        for item in project.items.all()
    }
    accuracy = {u.pk: a for u, a in zip(users, (0.95, 0.8, 0.7, 0.6, 0.5), strict=True)}
    start = timezone.now()
    # The late annotator takes the first item's lease and lets it run out.
    late_item = assignment_next(project=project, annotator=late_user, now=start).item
    now = start + timedelta(seconds=61)

    def label(user):
        lease = assignment_next(project=project, annotator=user, now=now)
        value = _value(
            rng,
            truth=truth[lease.item.pk],
            labels=labels,
            multi_label=multi_label,
            accuracy=accuracy[user.pk],
        )
        annotation_submit(project=project, item_id=lease.item.pk, annotator=user, value=value, now=now)
        return lease.item

    # Five annotators fill eight items (three each), then two of them label the other four.
    for step in range(24):
        label(users[step % 5])
    for step in range(8):
        label(users[step % 2])
    first = Annotation.objects.filter(project=project, annotator=users[0]).order_by("id").first()
    changed = {"choices": ["dog"]} if first.value != {"choices": ["dog"]} else {"choices": ["bird"]}
    resubmit = annotation_submit(project=project, item_id=first.item_id, annotator=users[0], value=changed)
    late = annotation_submit(
        project=project, item_id=late_item.pk, annotator=late_user, value={"choices": ["bird"]}, now=now
    )
    assert not resubmit.counted and late.late and not late.counted

    by_item = _votes_read_back(project)
    items = list(by_item.values())
    assert sorted(Counter(len(votes) for votes in items).items()) == [(2, 4), (3, 8)]
    assert all(late_user.pk not in votes for votes in items)
    assert by_item[first.item_id][users[0].pk] == changed != first.value

    agreement = project_agreement(project=project)
    assert agreement.scope("").fleiss_m == 3 and agreement.scope("").fleiss_items == 8
    assert_matches_references(
        lambda m: agreement if m == 3 else project_agreement(project=project, fleiss_m=m),
        items,
        multi_label=multi_label,
        label_names=labels,
        fleiss_ms=(3, 2),
    )
    assert [a.username for a in agreement.annotators] == sorted(u.username for u in users)
    assert {(p.username_a, p.username_b) for p in agreement.scope("").pair_figures} >= {
        (users[0].username, users[1].username)
    }


@pytest.mark.django_db
def test_project_agreement_reads_in_three_queries(django_assert_num_queries):
    users = [UserFactory() for _ in range(3)]
    project = make_project(
        items=4, overlap=3, multi_label=True, members=[(u, Membership.Role.ANNOTATOR) for u in users]
    )
    for step in range(12):
        user = users[step % 3]
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": ["positive"]}
        )
    with django_assert_num_queries(3):
        agreement = project_agreement(project=project)
    assert agreement.scope("").items == 4 and len(agreement.annotators) == 3


@pytest.mark.django_db
def test_a_project_without_votes_or_with_overlap_one_shows_n_a():
    users = [UserFactory() for _ in range(2)]
    project = make_project(items=2, overlap=1, members=[(u, Membership.Role.ANNOTATOR) for u in users])
    empty = project_agreement(project=project).scope("")
    assert (empty.percent_agreement, empty.krippendorff_alpha, empty.fleiss_kappa) == (None, None, None)
    for user in users:
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": ["positive"]}
        )
    figures = project_agreement(project=project).scope("")
    assert figures.items == 0 and figures.fleiss_m == 1
    assert format_measure(figures.krippendorff_alpha) == format_measure(figures.fleiss_kappa) == "n/a"
