from types import SimpleNamespace as A

from annotate.quality.consensus import consensus
from annotate.quality.votes import votes_from_rows


def _v(*labels):
    return {"choices": list(labels)}


def test_single_label_majority_wins():
    result = consensus([_v("cat"), _v("dog"), _v("cat")], multi_label=False)
    assert (result.value, result.tie, result.votes) == (_v("cat"), False, 3)


def test_single_label_tie_is_marked_and_has_no_value():
    result = consensus([_v("cat"), _v("dog")], multi_label=False)
    assert (result.value, result.tie) == (None, True)


def test_multi_label_keeps_labels_chosen_by_more_than_half():
    result = consensus(
        [_v("a", "b"), _v("a"), _v("a", "c"), _v("b", "c")], multi_label=True, label_order=["c", "b", "a"]
    )
    assert result.value == _v("a")
    result = consensus([_v("a", "b"), _v("a", "b"), _v("b")], multi_label=True, label_order=["b", "a"])
    assert result.value == _v("b", "a")


def test_no_votes_gives_no_value():
    assert consensus([], multi_label=False).value is None


def test_each_voter_votes_once_with_their_latest_value_and_uncounted_late_submits_do_not_vote():
    annotations = [
        A(annotator_id=1, value=_v("cat"), counted=True),
        A(annotator_id=2, value=_v("dog"), counted=True),
        A(annotator_id=1, value=_v("dog"), counted=False),  # 1 corrects their own vote
        A(annotator_id=3, value=_v("cat"), counted=False),  # late, not counted: no vote
    ]
    rows = [(a.annotator_id, a.value, a.counted, False) for a in annotations]
    assert list(votes_from_rows(rows).values()) == [_v("dog"), _v("dog")]


def test_a_rejected_answer_never_votes_and_the_voters_answer_before_it_stands():
    rows = [
        (1, _v("cat"), True, False),
        (1, _v("dog"), False, True),  # 1's changed answer, rejected: their cat stands
        (2, _v("dog"), False, True),  # 2's only counted answer, rejected (and so uncounted)
        (2, _v("cat"), False, False),  # 2 answers again without a free slot: no vote
        (3, _v("dog"), True, False),
    ]
    assert votes_from_rows(rows) == {1: _v("cat"), 3: _v("dog")}
