"""The final label of an item: its annotators' votes (consensus), a review, or a gold value.

One vote per annotator who holds a counted annotation of the item: their latest annotation
(a resubmit corrects their own vote; a late, uncounted submit from someone else is kept but
does not vote; a rejected annotation is uncounted, so it does not vote either).

Precedence (final_of): a gold item's true value, then the value a review put in force, then
the voters: none, one ("single"), a majority ("consensus") or a tie.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from annotate.models import FinalSource


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
    """The voters did not all give the same value."""
    return len({tuple(sorted(v.get("choices", []))) for v in votes}) > 1
