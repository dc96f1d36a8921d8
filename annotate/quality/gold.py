"""Gold items: answers checked against a known value, and each annotator's gold accuracy.

An annotator is paused automatically only with at least GOLD_MIN_ANSWERS answers, and only when
even the upper end of the Wilson score interval (95%) of their accuracy is below the project's
bar: a few unlucky answers never pause anyone.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annotate.models import Project

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
