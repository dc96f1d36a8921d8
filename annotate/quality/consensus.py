"""The final label of an item: its annotators' votes (consensus), a review, or a gold value.

One vote per annotator who holds a counted, not rejected annotation of the item: their latest
annotation not rejected (a changed answer replaces their own vote; a late, uncounted submit from
someone else is kept but does not vote; a rejected annotation never votes, so rejecting a
changed, uncounted answer lets the one before it vote again).

Precedence (final_of): a gold item's true value, then the value a review put in force, then
the voters: none, one ("single"), a majority ("consensus") or a tie.

Boxes and spans (the shape of the values says which):
- boxes: the voters' boxes are clustered (annotate/quality/matching.py: Hungarian assignment on
  IoU ≥ 0.5, at most one box per voter in a cluster); a cluster is in the consensus when more
  than half of the voters have a box in it with the same label, its edges the median of theirs
  (of x, y, x + w and y + h, so the box stays inside the image and of positive size);
- spans: a span (exact offsets and label) is in when more than half of the voters marked it.
  Two overlapping spans can never both be in (each needs more than half of the voters, and no
  voter marks both where overlaps are refused), so the consensus keeps the project's rule.
No tie is possible: two labels cannot both have more than half of one cluster's voters, and an
object short of a majority is simply not in. The consensus may be empty ({"boxes": []}); the
item is then flagged as a disagreement, which serves it first to reviewers.
`disagree`: the voters' values are not equivalent (boxes: some cluster lacks a voter's box or has
two labels; spans: the sets of (start, end, label) differ).
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median

from annotate.models import FinalSource
from annotate.quality.matching import EXACT, clusters, value_kind


@dataclass(frozen=True)
class Consensus:
    value: dict | None  # {"choices": [...]}; None when there are no votes or a tie
    tie: bool
    votes: int


def consensus(values: Sequence[dict], *, multi_label: bool, label_order: Sequence[str] = ()) -> Consensus:
    """The majority value of `values` (one per voting annotator).

    Single-label: the most chosen label; a tie for first place is a tie (value None).
    Multi-label: a label is in when more than half of the voters chose it; no tie is possible.
    """
    votes = len(values)
    if not votes:
        return Consensus(value=None, tie=False, votes=0)
    kind = value_kind(values[0])
    if kind == "boxes":
        return Consensus(value=_boxes_consensus(values), tie=False, votes=votes)
    if kind == "spans":
        return Consensus(value=_spans_consensus(values, label_order=label_order), tie=False, votes=votes)
    counts = Counter(choice for value in values for choice in value.get("choices", []))
    if multi_label:
        chosen = [label for label, n in counts.items() if n * 2 > votes]
        order = {name: i for i, name in enumerate(label_order)}
        chosen.sort(key=lambda name: (order.get(name, len(order)), name))
        return Consensus(value={"choices": chosen}, tie=False, votes=votes)
    ranked = counts.most_common()
    if not ranked:
        return Consensus(value=None, tie=False, votes=votes)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return Consensus(value=None, tie=True, votes=votes)
    return Consensus(value={"choices": [ranked[0][0]]}, tie=False, votes=votes)


def _boxes_consensus(values: Sequence[dict]) -> dict:
    votes = len(values)
    boxes = []
    for cluster in clusters(dict(enumerate(values)), mode=EXACT):
        labels = Counter(box["label"] for box in cluster.values())
        label, n = labels.most_common(1)[0]
        if n * 2 <= votes:
            continue
        agreeing = [box for box in cluster.values() if box["label"] == label]
        x, y = median(b["x"] for b in agreeing), median(b["y"] for b in agreeing)
        right = median(b["x"] + b["w"] for b in agreeing)
        bottom = median(b["y"] + b["h"] for b in agreeing)
        boxes.append({"x": x, "y": y, "w": right - x, "h": bottom - y, "label": label})
    return {"boxes": boxes}


def _spans_consensus(values: Sequence[dict], *, label_order: Sequence[str]) -> dict:
    votes = len(values)
    counts = Counter((s["start"], s["end"], s["label"]) for value in values for s in value.get("spans", []))
    order = {name: i for i, name in enumerate(label_order)}
    chosen = sorted(
        (span for span, n in counts.items() if n * 2 > votes),
        key=lambda s: (s[0], s[1], order.get(s[2], len(order)), s[2]),
    )
    return {"spans": [{"start": start, "end": end, "label": label} for start, end, label in chosen]}


def final_of(
    *,
    votes: Sequence[dict],
    multi_label: bool,
    label_order: Sequence[str] = (),
    gold_value: dict | None = None,
    reviewed_value: dict | None = None,
) -> tuple[dict | None, str]:
    """(final value, source) of an item; see the precedence in the module's docstring."""
    if gold_value is not None:
        return gold_value, FinalSource.GOLD
    if reviewed_value is not None:
        return reviewed_value, FinalSource.REVIEW
    if not votes:
        return None, FinalSource.NONE
    if len(votes) == 1:
        return votes[0], FinalSource.SINGLE
    result = consensus(votes, multi_label=multi_label, label_order=label_order)
    if result.tie:
        return None, FinalSource.TIE
    return result.value, FinalSource.CONSENSUS


def disagree(votes: Sequence[dict]) -> bool:
    """The voters did not all give the same value (boxes and spans: equivalent ones)."""
    if len(votes) < 2:
        return False
    kind = value_kind(votes[0])
    if kind == "boxes":
        return any(
            len(cluster) < len(votes) or len({box["label"] for box in cluster.values()}) > 1
            for cluster in clusters(dict(enumerate(votes)), mode=EXACT)
        )
    if kind == "spans":
        return len({_span_set(v) for v in votes}) > 1
    return len({tuple(sorted(v.get("choices", []))) for v in votes}) > 1


def values_equivalent(a: Mapping | None, b: Mapping | None) -> bool:
    """Two values say the same: equal choices, the same spans, or boxes that all match (IoU ≥ 0.5)
    with the same labels."""
    if a is None or b is None:
        return a is b
    if value_kind(a) != value_kind(b):
        return False
    return not disagree([dict(a), dict(b)])


def _span_set(value: Mapping) -> frozenset:
    return frozenset((s["start"], s["end"], s["label"]) for s in value.get("spans", []))
