"""Label quality: the final label of an item from its annotators' votes (consensus).

One vote per annotator who holds a counted annotation of the item: their latest annotation
(a resubmit corrects their own vote; a late, uncounted submit from someone else is kept but
does not vote).
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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


def voting_values(annotations: Iterable) -> list[dict]:
    """From one item's annotations (oldest first), each voting annotator's latest value."""
    latest: dict[int, dict] = {}
    voters: set[int] = set()
    for annotation in annotations:
        latest[annotation.annotator_id] = annotation.value
        if annotation.counted:
            voters.add(annotation.annotator_id)
    return [latest[a] for a in latest if a in voters]
