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
    rows = [(a.annotator_id, a.value, a.counted) for a in annotations]
    assert list(votes_from_rows(rows).values()) == [_v("dog"), _v("dog")]
