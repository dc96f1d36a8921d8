"""Gold items: answers checked against a known value, and each annotator's gold accuracy.

An annotator is paused automatically only with at least GOLD_MIN_ANSWERS answers, and only when
even the upper end of the Wilson score interval (95%) of their accuracy is below the project's
bar: a few unlucky answers never pause anyone.

What counts as one answer (gold_answer_score): for classification, the item (correct when the value
equals the gold one). For boxes and spans, each entity: the answer's objects are matched to the
gold ones (annotate/quality/matching.py: spans by exact offsets, boxes by IoU ≥ 0.5), and each gold
object found with its label is one correct answer, each gold object missed, each extra object
and each matched one with another label one wrong answer. An empty answer on an empty gold value
is one correct answer (nothing to find, nothing invented). So Membership.gold_answers and
gold_correct count entities there, and the Wilson interval and the pause read them unchanged (ten
answers come sooner: one gold text may hold several entities).
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annotate.models import Project

from annotate.quality.matching import EXACT, match, objects_of, value_kind

GOLD_MIN_ANSWERS = 10
Z_95 = 1.959963984540054  # the normal quantile of 0.975


@dataclass(frozen=True)
class GoldAccuracy:
    answers: int
    correct: int
    accuracy: float | None  # None without answers
    low: float | None
    high: float | None


def wilson_interval(correct: int, answers: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion correct/answers (None without answers)."""
    if answers <= 0:
        return None
    p = correct / answers
    denominator = 1 + z * z / answers
    centre = (p + z * z / (2 * answers)) / denominator
    half = z * math.sqrt(p * (1 - p) / answers + z * z / (4 * answers * answers)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def gold_answer_score(*, value: dict, gold_value: dict | None) -> tuple[int, int]:
    """(answers, correct) that one answer on a gold item adds; see the module's docstring."""
    kind = value_kind(gold_value) if gold_value is not None else value_kind(value)
    if kind == "choices":
        return 1, 1 if value == gold_value else 0
    found, truth = objects_of(value), objects_of(gold_value)
    if not found and not truth:
        return 1, 1
    pairs = match(truth, found, kind=kind, mode=EXACT)
    correct = sum(1 for i, j in pairs if truth[i]["label"] == found[j]["label"])
    return len(truth) + len(found) - len(pairs), correct


def gold_accuracy(*, answers: int, correct: int) -> GoldAccuracy:
    interval = wilson_interval(correct, answers)
    if interval is None:
        return GoldAccuracy(answers=0, correct=0, accuracy=None, low=None, high=None)
    return GoldAccuracy(
        answers=answers, correct=correct, accuracy=correct / answers, low=interval[0], high=interval[1]
    )


def gold_pause_reason(*, project: "Project", answers: int, correct: int) -> str:
    """Why the project's gold bar pauses an annotator with these answers ("" when it does not)."""
    bar = project.gold_pause_below
    if bar is None or answers < GOLD_MIN_ANSWERS:
        return ""
    accuracy = gold_accuracy(answers=answers, correct=correct)
    if accuracy.high >= bar:
        return ""
    return (
        f"paused: {correct} of {answers} gold answers correct ({accuracy.accuracy:.0%}; at most"
        f" {accuracy.high:.0%} with 95% confidence), below this project's bar of {bar:.0%}"
    )
