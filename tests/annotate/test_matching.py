"""Matching boxes and spans (annotate/quality/matching.py) on cases computed by hand, and the
per-entity gold score built on it. No database: the module knows nothing of Django."""

import pytest

from annotate.quality.gold import gold_answer_score, gold_pause_reason
from annotate.quality.matching import (
    EXACT,
    OVERLAP,
    box_iou,
    clusters,
    f1,
    match,
    pair_counts,
    span_iou,
    value_kind,
)


def box(x, w, label="PER", y=0.0, h=1.0):
    return {"x": x, "y": y, "w": w, "h": h, "label": label}


def span(start, end, label="PER"):
    return {"start": start, "end": end, "label": label}


def test_box_iou_by_hand():
    # (0, 0, .4, .4) and (.05, 0, .4, .4): shared .35 × .4 = .14; union .16 + .16 - .14 = .18.
    assert box_iou(box(0, 0.4, h=0.4), box(0.05, 0.4, h=0.4)) == pytest.approx(0.14 / 0.18)
    # (0, 0, .4, .4) and (.1, .1, .4, .4): shared .3 × .3 = .09; union .32 - .09 = .23: 0.391.
    assert box_iou(box(0, 0.4, h=0.4), box(0.1, 0.4, y=0.1, h=0.4)) == pytest.approx(0.09 / 0.23)
    # Touching edges share nothing.
    assert box_iou(box(0, 0.5), box(0.5, 0.5)) == 0.0


def test_a_pair_matches_from_an_iou_of_one_half_and_not_below():
    # (0, 0, .4, .2) and (0, 0, .2, .2): shared .04, union .08: IoU exactly 1/2.
    assert match([box(0, 0.4, h=0.2)], [box(0, 0.2, h=0.2)], kind="boxes") == [(0, 0)]
    # IoU 0.09 / 0.23 = 0.391: no match, both are missing for the other.
    assert match([box(0, 0.4, h=0.4)], [box(0.1, 0.4, y=0.1, h=0.4)], kind="boxes") == []


def test_boxes_are_matched_by_the_hungarian_assignment_not_greedily():
    # Full-height boxes, so the IoU is that of the x intervals:
    #   A1 = [.08, .48)  B1 = [0, .4): shared .32, union .48 -> 2/3
    #   A1               B2 = [.2, .6): shared .28, union .52 -> 7/13 = 0.538
    #   A2 = [0, .25)    B1: shared .25, union .4 -> 0.625
    #   A2               B2: shared .05, union .6 -> 1/12 (below 1/2: no pair)
    a1, a2, b1, b2 = box(0.08, 0.4), box(0, 0.25), box(0, 0.4), box(0.2, 0.4)
    assert box_iou(a1, b1) == pytest.approx(2 / 3)
    assert box_iou(a1, b2) == pytest.approx(7 / 13)
    assert box_iou(a2, b1) == pytest.approx(0.625)
    assert box_iou(a2, b2) == pytest.approx(1 / 12)
    # Greedy (best IoU first) would take A1-B1 and leave A2 and B2 unmatched; the assignment
    # maximising the summed IoU (7/13 + 0.625 = 1.163 > 2/3) matches both.
    assert match([a1, a2], [b1, b2], kind="boxes") == [(0, 1), (1, 0)]


def test_labels_do_not_decide_a_box_match_but_break_ties():
    a = [box(0, 0.5, "PER")]
    assert match(a, [box(0, 0.5, "ORG")], kind="boxes") == [(0, 0)]
    # Two identical candidates: the one with the same label is taken.
    assert match(a, [box(0, 0.5, "ORG"), box(0, 0.5, "PER")], kind="boxes") == [(0, 1)]


def test_spans_match_by_exact_offsets_or_by_overlap():
    a = [span(0, 5, "PER"), span(10, 15, "ORG")]
    b = [span(0, 5, "ORG"), span(11, 15, "ORG")]
    assert match(a, b, kind="spans", mode=EXACT) == [(0, 0)]
    assert match(a, b, kind="spans", mode=OVERLAP) == [(0, 0), (1, 1)]
    # [10, 15) and [11, 15): 4 shared code points of 5.
    assert span_iou(a[1], b[1]) == pytest.approx(4 / 5)
    # One long span, two candidates: [0, 10) with [0, 4) is 4/10, with [5, 10) 5/10.
    assert match([span(0, 10)], [span(0, 4), span(5, 10)], kind="spans", mode=OVERLAP) == [(0, 1)]
    # Touching spans share nothing.
    assert match([span(0, 5)], [span(5, 9)], kind="spans", mode=OVERLAP) == []


def test_pair_counts_and_f1_count_the_unmatched_as_missing():
    a = [span(0, 5, "PER"), span(6, 10, "LOC"), span(12, 15, "ORG")]
    b = [span(0, 5, "PER"), span(6, 10, "ORG"), span(20, 22, "PER")]
    assert pair_counts(a, b, kind="spans") == {"matched": 2, "same_label": 1, "only_a": 1, "only_b": 1}
    assert f1(a, b, kind="spans") == pytest.approx(2 * 1 / 6)
    assert f1([], [], kind="spans") is None


def test_three_voters_are_clustered_one_object_each_with_complete_linkage():
    # Voter 1 (0.1, 0.1), voter 2 (0.12, 0.1), voter 3 (0.1, 0.12), all 0.2 × 0.2:
    #   1-2: shared .18 × .2 = .036, union .08 - .036 = .044 -> 0.818
    #   1-3: the same, 0.818; 2-3: shared .18 × .18 = .0324, union .0476 -> 0.681
    # so voter 3's box matches both and joins them; its second box, far away, starts a cluster.
    one = {"boxes": [box(0.1, 0.2, y=0.1, h=0.2)]}
    two = {"boxes": [box(0.12, 0.2, y=0.1, h=0.2)]}
    three = {"boxes": [box(0.1, 0.2, "ORG", y=0.12, h=0.2), box(0.7, 0.2, y=0.7, h=0.2)]}
    assert box_iou(two["boxes"][0], three["boxes"][0]) == pytest.approx(0.0324 / 0.0476)
    found = clusters({3: three, 1: one, 2: two})
    assert [sorted(c) for c in found] == [[1, 2, 3], [3]]
    assert found[0][3]["label"] == "ORG"


def test_a_box_joins_a_cluster_only_when_it_matches_every_box_in_it():
    # Full-height boxes, IoU of the x intervals:
    #   1 = [0, .6), 2 = [.1, .7): shared .5, union .7 -> 0.714: one cluster
    #   3 = [.2, .8): with 2 shared .5, union .7 -> 0.714; with 1 shared .4, union .8 -> 0.5: joins
    #   4 = [.25, .85): with 2 0.45 / 0.75 = 0.6, with 3 0.55 / 0.65 = 0.846, but with 1
    #   0.35 / 0.85 = 0.41: it cannot join, and starts a cluster alone.
    votes = {1: box(0, 0.6), 2: box(0.1, 0.6), 3: box(0.2, 0.6), 4: box(0.25, 0.6)}
    found = clusters({voter: {"boxes": [b]} for voter, b in votes.items()})
    assert [sorted(c) for c in found] == [[1, 2, 3], [4]]


def test_value_kind_reads_the_shape():
    assert value_kind({"boxes": []}) == "boxes"
    assert value_kind({"spans": []}) == "spans"
    assert value_kind({"choices": ["a"]}) == "choices"


def test_gold_is_scored_per_entity():
    gold = {"spans": [span(0, 5, "PER"), span(6, 10, "LOC"), span(12, 15, "ORG")]}
    answer = {"spans": [span(0, 5, "PER"), span(6, 10, "ORG"), span(20, 22, "PER")]}
    # Found: [0, 5) PER. Wrong: [6, 10) labelled ORG, [12, 15) missed, [20, 22) extra.
    assert gold_answer_score(value=answer, gold_value=gold) == (4, 1)
    assert gold_answer_score(value=gold, gold_value=gold) == (3, 3)
    assert gold_answer_score(value={"spans": []}, gold_value=gold) == (3, 0)
    assert gold_answer_score(value={"spans": []}, gold_value={"spans": []}) == (1, 1)
    assert gold_answer_score(value={"spans": [span(1, 2)]}, gold_value={"spans": []}) == (1, 0)
    # Boxes: IoU 0.14 / 0.18 = 0.78 is found; a classification answer is one answer.
    boxes = {"boxes": [box(0, 0.4, h=0.4)]}
    assert gold_answer_score(value={"boxes": [box(0.05, 0.4, h=0.4)]}, gold_value=boxes) == (1, 1)
    assert gold_answer_score(value={"choices": ["a"]}, gold_value={"choices": ["b"]}) == (1, 0)


def test_the_pause_reads_entity_counts_through_the_wilson_interval():
    class Bar:
        gold_pause_below = 0.8

    # 12 entities, 3 found: 25%, at most 53% with 95% confidence: paused.
    assert "3 of 12 gold answers" in gold_pause_reason(project=Bar(), answers=12, correct=3)
    # 12 entities, 8 found: 67%, the interval reaches above 80%: not paused.
    assert gold_pause_reason(project=Bar(), answers=12, correct=8) == ""
