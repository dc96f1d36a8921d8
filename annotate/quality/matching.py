"""Which of two (or more) annotators' boxes or spans are "the same object". No Django.

- Boxes: two boxes match when their IoU (intersection over union of the areas, in fractions of
  the image) is at least BOX_IOU_MIN (0.5). Among the candidate pairs the assignment is the
  Hungarian one (scipy.optimize.linear_sum_assignment) that maximises the summed IoU, so each
  box matches at most one box of the other annotator.
- Spans, two modes. EXACT (the default, and the one agreement, consensus and gold use): two spans
  match when their offsets are equal. OVERLAP: when they share at least one code point, the
  assignment maximising the summed span IoU (shared code points over the union's). Agreement
  reports both for span projects (annotate/quality/votes.py: scope "" exact, OVERLAP_SCOPE).

Labels do not decide a match, so a label disagreement shows up as one (matched pair with two
labels); between equal geometric scores a pair with the same label is preferred (LABEL_BONUS).
An object left unmatched is "missing" for the other annotator.

With more than two annotators, objects are grouped into clusters, at most one object per
annotator each: annotators are taken in order of id, and each one's objects are assigned
(Hungarian again) to the clusters built so far, an object joining a cluster only when it matches
every object already in it (complete linkage), weighted by its mean score with them; an object
joining none starts a cluster of its own. With two annotators this is exactly the pairwise match.
"""

from collections.abc import Mapping, Sequence

BOX_IOU_MIN = 0.5
EXACT, OVERLAP = "exact", "overlap"
LABEL_BONUS = 1e-6  # far below any IoU difference that matters, only breaks ties
_EPSILON = 1e-12  # an IoU computed as 0.49999999999999994 for a hand-made 0.5 still matches


def value_kind(value: object) -> str:
    """ "boxes", "spans" or "choices": which shape a label value has."""
    if isinstance(value, Mapping):
        if "boxes" in value:
            return "boxes"
        if "spans" in value:
            return "spans"
    return "choices"


def objects_of(value: Mapping | None) -> list[dict]:
    """The boxes or spans of a value (an empty list for anything else)."""
    if not value:
        return []
    kind = value_kind(value)
    return list(value.get(kind, [])) if kind != "choices" else []


def box_iou(a: Mapping, b: Mapping) -> float:
    """Intersection over union of two boxes {"x", "y", "w", "h"}."""
    width = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    if width <= 0 or height <= 0:
        return 0.0
    shared = width * height
    union = a["w"] * a["h"] + b["w"] * b["h"] - shared
    return shared / union if union > 0 else 0.0


def span_iou(a: Mapping, b: Mapping) -> float:
    """Shared code points of two spans over the code points of their union."""
    shared = min(a["end"], b["end"]) - max(a["start"], b["start"])
    if shared <= 0:
        return 0.0
    return shared / (max(a["end"], b["end"]) - min(a["start"], b["start"]))


def score(a: Mapping, b: Mapping, *, kind: str, mode: str = EXACT) -> float | None:
    """How well two objects match (higher is better), None when they cannot match."""
    if kind == "boxes":
        iou = box_iou(a, b)
        return iou if iou >= BOX_IOU_MIN - _EPSILON else None
    if mode == EXACT:
        return 1.0 if (a["start"], a["end"]) == (b["start"], b["end"]) else None
    iou = span_iou(a, b)
    return iou if iou > 0 else None


def _assign(weights: list[list[float | None]]) -> list[tuple[int, int]]:
    """The (row, column) pairs of the assignment maximising the summed weights, None forbidden."""
    if not weights or not weights[0]:
        return []
    from scipy.optimize import linear_sum_assignment  # imported here: the web process stays light

    # A forbidden pair weighs 0: any matching of allowed pairs extends to a full assignment of the
    # same total with zero-weight fillers, so the best full one, less its fillers, is the best.
    cost = [[-(w or 0.0) for w in row] for row in weights]
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if weights[r][c] is not None]


def _weight(a: Mapping, b: Mapping, *, kind: str, mode: str) -> float | None:
    s = score(a, b, kind=kind, mode=mode)
    if s is None:
        return None
    return s + (LABEL_BONUS if a.get("label") == b.get("label") else 0.0)


def match(
    a: Sequence[Mapping], b: Sequence[Mapping], *, kind: str, mode: str = EXACT
) -> list[tuple[int, int]]:
    """The matched pairs (index in `a`, index in `b`), by `a`'s index; the rest are unmatched."""
    weights = [[_weight(x, y, kind=kind, mode=mode) for y in b] for x in a]
    return sorted(_assign(weights))


def cluster_indices(votes: Mapping[int, Mapping], *, mode: str = EXACT) -> list[dict[int, int]]:
    """The voters' objects ({voter: value}) grouped as the module's docstring says: a list of
    {voter: index of their object in their value}, in the order the clusters were started."""
    found: list[dict[int, int]] = []
    members: list[list[Mapping]] = []  # each cluster's objects, for the linkage
    for voter in sorted(votes):
        value = votes[voter]
        kind = value_kind(value)
        objects = objects_of(value)
        weights = []
        for obj in objects:
            row = []
            for others in members:
                scores = [_weight(obj, other, kind=kind, mode=mode) for other in others]
                row.append(None if None in scores else sum(scores) / len(scores))
            weights.append(row)
        joined = dict(_assign(weights)) if members else {}
        for i, obj in enumerate(objects):
            if i in joined:
                found[joined[i]][voter] = i
                members[joined[i]].append(obj)
            else:
                found.append({voter: i})
                members.append([obj])
    return found


def clusters(votes: Mapping[int, Mapping], *, mode: str = EXACT) -> list[dict[int, dict]]:
    """As cluster_indices, with each voter's object itself: a list of {voter: object}."""
    return [
        {voter: dict(objects_of(votes[voter])[i]) for voter, i in unit.items()}
        for unit in cluster_indices(votes, mode=mode)
    ]


def differing(values: Mapping[int, Mapping], *, mode: str = EXACT) -> dict[int, list[int]]:
    """{key: indices of its objects not matched, with the same label, in every other value}:
    what a reviewer should look at. Keys are whatever `values` is keyed by (annotations)."""
    found: dict[int, list[int]] = {k: [] for k in values}
    for unit in cluster_indices(values, mode=mode):
        labels = {objects_of(values[k])[i]["label"] for k, i in unit.items()}
        if len(unit) < len(values) or len(labels) > 1:
            for k, i in unit.items():
                found[k].append(i)
    return {k: sorted(v) for k, v in found.items()}


def pair_counts(a: Sequence[Mapping], b: Sequence[Mapping], *, kind: str, mode: str = EXACT) -> dict:
    """{"matched", "same_label", "only_a", "only_b"} for two annotators' objects."""
    pairs = match(a, b, kind=kind, mode=mode)
    same = sum(1 for i, j in pairs if a[i]["label"] == b[j]["label"])
    return {
        "matched": len(pairs),
        "same_label": same,
        "only_a": len(a) - len(pairs),
        "only_b": len(b) - len(pairs),
    }


def f1(a: Sequence[Mapping], b: Sequence[Mapping], *, kind: str, mode: str = EXACT) -> float | None:
    """F1 of `b` against `a` (symmetric): 2 × matched pairs with the same label / (|a| + |b|);
    None when neither has an object."""
    if not a and not b:
        return None
    return 2 * pair_counts(a, b, kind=kind, mode=mode)["same_label"] / (len(a) + len(b))
