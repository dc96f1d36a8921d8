"""One item's voters, and what their votes add to the project's agreement tallies.

Agreement is kept as counts (annotate.models.Tally), never recomputed from the annotations:

- kind "coincidence", key [scope, m, a, b]: ordered pairs of ratings (a, b) given by two
  different voters of the same item, on items with m voters. Krippendorff's alpha reads the
  coincidence matrix from them (each pair weighs 1 / (m - 1)); Fleiss' kappa reads, for one m,
  the agreeing pairs and the ratings per category; percent agreement the share of agreeing pairs.
- kind "pair", key [annotator a, annotator b, scope, value of a, value of b] with a < b: the
  per-pair confusion counts Cohen's kappa and the pair's percent agreement read.

A scope is "" for the whole value (single-label: the label; multi-label: the set of labels), and
for multi-label projects also each label's name, with the categories "1" (chosen) and "0".
When an item's voters change, the change is what the new voters add less what the old ones did.

Boxes and spans (image_boxes, text_spans). The unit rated is an object, not the item: the voters'
boxes or spans are grouped into clusters (annotate/quality/matching.py: boxes by Hungarian
assignment on IoU ≥ 0.5, spans by exact offsets), and in each cluster every voter of the item
gives a rating: the label of their object in it, or MISSING ("", they marked nothing there). So
an item with m voters adds, per cluster, the m (m - 1) ordered pairs of those ratings to
"coincidence" under the same m, and alpha, Fleiss' kappa and percent agreement read them as
they read items (their "items" are then objects). An item where nobody marked anything adds
nothing. "pair" counts, per pair of annotators, each cluster where at least one of the two has
an object (a cluster only others marked says nothing about these two); Cohen's kappa, percent
agreement and the pair's F1 (2 × same label / (objects of a + objects of b),
annotate/quality/agreement.py) read them. Span projects count it all twice: scope "" by exact
offsets, scope OVERLAP_SCOPE by overlapping ones.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations, permutations

from django.db import connection

from annotate.models import Annotation
from annotate.quality.matching import EXACT, OVERLAP, clusters, value_kind
from annotate.quality.tallies import key
from annotate.raw_rows import table

Votes = Mapping[int, dict]  # annotator id -> their voting value
MISSING = ""  # the rating of a voter who has no object in a cluster (no label name is empty)
OVERLAP_SCOPE = "overlapping spans"


def categories(value: dict, *, multi_label: bool, label_names: Sequence[str]) -> dict[str, str]:
    """The category of one rating in each agreement scope."""
    choices = value.get("choices", [])
    if not multi_label:
        return {"": choices[0] if choices else ""}
    chosen = set(choices)
    scopes = {"": key(*sorted(chosen))}
    for name in label_names:
        scopes[name] = "1" if name in chosen else "0"
    return scopes


def agreement_tallies(votes: Votes, *, multi_label: bool, label_names: Sequence[str]) -> Counter:
    """What an item with these voters adds to the agreement tallies (nothing under 2 voters)."""
    added: Counter = Counter()
    m = len(votes)
    if m < 2:
        return added
    kind = value_kind(next(iter(votes.values())))
    if kind != "choices":
        return _object_tallies(votes, kind=kind)
    rated = {
        annotator: categories(value, multi_label=multi_label, label_names=label_names)
        for annotator, value in votes.items()
    }
    for a, b in permutations(sorted(rated), 2):
        for scope, category in rated[a].items():
            added["coincidence", key(scope, m, category, rated[b][scope])] += 1
    for a, b in combinations(sorted(rated), 2):
        for scope, category in rated[a].items():
            added["pair", key(a, b, scope, category, rated[b][scope])] += 1
    return added


def object_ratings(votes: Votes, *, mode: str = EXACT) -> list[dict[int, str]]:
    """Per cluster of the voters' boxes or spans, each voter's rating: a label, or MISSING."""
    voters = sorted(votes)
    return [
        {voter: unit[voter]["label"] if voter in unit else MISSING for voter in voters}
        for unit in clusters(votes, mode=mode)
    ]


def _object_tallies(votes: Votes, *, kind: str) -> Counter:
    added: Counter = Counter()
    m = len(votes)
    scopes = [("", EXACT)] + ([(OVERLAP_SCOPE, OVERLAP)] if kind == "spans" else [])
    for scope, mode in scopes:
        for rating in object_ratings(votes, mode=mode):
            for a, b in permutations(rating, 2):
                added["coincidence", key(scope, m, rating[a], rating[b])] += 1
            for a, b in combinations(rating, 2):
                if rating[a] != MISSING or rating[b] != MISSING:
                    added["pair", key(a, b, scope, rating[a], rating[b])] += 1
    return added


def votes_from_rows(rows) -> dict[int, dict]:
    """From (annotator id, value, counted, rejected) rows of one item, oldest first: each voter's vote.

    A voter is an annotator who holds a counted answer that is not rejected; their vote is their
    latest answer that is not rejected (a changed answer replaces it; a rejected one never
    votes, and the answer before it stands). A review's reject uncounts the row it rejects
    (annotate/review.py), so an annotator whose only counted answer was rejected stops voting,
    and one whose changed, uncounted answer was rejected votes again with the one before.
    """
    latest: dict[int, dict] = {}
    voters: set[int] = set()
    for annotator_id, value, counted, rejected in rows:
        if rejected:
            continue
        latest[annotator_id] = value
        if counted:
            voters.add(annotator_id)
    return {a: latest[a] for a in latest if a in voters}


_VALUE = Annotation._meta.get_field("value")
VOTE_COLUMNS = "annotator_id, value, counted, rejected"  # the rows votes_from_rows reads, in order


def item_votes(cursor, *, item_id: int) -> dict[int, dict]:
    """Caller holds the item's lock. The item's voters and their values (one statement)."""
    cursor.execute(
        f"SELECT {VOTE_COLUMNS} FROM {table(Annotation)} WHERE item_id = %s ORDER BY id",
        [item_id],
    )
    return votes_from_rows(
        (annotator_id, _VALUE.from_db_value(value, None, connection), counted, rejected)
        for annotator_id, value, counted, rejected in cursor.fetchall()
    )
