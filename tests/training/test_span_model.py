"""The span CRF on its own (no Django): quality on unseen templates and names against two
baselines, BIO tags both ways on the stated tokenizer, save and load through crfsuite's file,
and the queue's uncertainty from the marginals."""

import json

import numpy as np
import pycrfsuite
import pytest

from annotate.tokens import tokens
from tests.training.span_data import (
    LABELS,
    TEST_TEMPLATES,
    TRAIN_TEMPLATES,
    capitalised_tagger,
    gazetteer_tagger,
    make_split,
)
from training.backends import get_backend, load_backend
from training.backends.spans import (
    MODEL_FILE,
    SpanCRFBackend,
    repair_tags,
    spans_to_tags,
    tag_names,
    tags_to_spans,
)
from training.evaluation import evaluate_spans
from training.strategies import sequence_scores


def docs(texts):
    """The backend's documents: each text with its stated tokens (as training/versions.py makes them)."""
    return [(text, tokens(text)) for text in texts]


@pytest.fixture(scope="module")
def split():
    return make_split(n_train=300, n_test=150, seed=7)


@pytest.fixture(scope="module")
def model(split):
    train, _ = split
    backend = SpanCRFBackend()
    backend.fit(docs(s.text for s in train), [s.spans for s in train], classes=LABELS)
    return backend


def _score(sentences, predicted, n_train):
    true = [spans_to_tags(tokens(s.text), s.spans)[0] for s in sentences]
    pred = [spans_to_tags(tokens(s.text), p)[0] for s, p in zip(sentences, predicted, strict=True)]
    return evaluate_spans(true, pred, classes=LABELS, n_train=n_train)


def test_the_test_split_shares_no_template_and_no_entity_with_training(split):
    train, test = split
    assert not set(TRAIN_TEMPLATES) & set(TEST_TEMPLATES)
    names = lambda sentences: {s.text[sp["start"] : sp["end"]] for s in sentences for sp in s.spans}  # noqa: E731
    assert len(names(test)) > 100 and not names(train) & names(test)


def test_the_crf_finds_unseen_entities_with_f1_above_0_8_and_above_both_baselines(split, model):
    train, test = split
    texts = [s.text for s in test]
    crf = _score(test, model.predict(docs(texts)), len(train))
    capitalised = _score(test, [capitalised_tagger(train)(t) for t in texts], len(train))
    gazetteer = _score(test, [gazetteer_tagger(train)(t) for t in texts], len(train))
    assert crf["f1"] >= 0.8, crf
    assert crf["f1"] > capitalised["f1"] + 0.1 and crf["f1"] > gazetteer["f1"] + 0.1
    assert all(crf["per_class"][name]["f1"] >= 0.7 for name in LABELS), crf["per_class"]
    assert sum(row["support"] for row in crf["per_class"].values()) == sum(len(s.spans) for s in test)


def test_save_then_load_with_crfsuites_tagger_gives_the_same_predictions(split, model, tmp_path):
    _, test = split
    texts = [s.text for s in test[:40]]
    files = model.save(tmp_path)
    assert sorted(files) == sorted([MODEL_FILE, "model.json"])
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert manifest["backend"] == "span_crf" and manifest["tags"] == tag_names(LABELS)
    # The file is crfsuite's own: a bare Tagger opens it and tags like the backend does.
    tagger = pycrfsuite.Tagger()
    tagger.open(str(tmp_path / MODEL_FILE))
    assert set(tagger.labels()) <= set(tag_names(LABELS))
    offsets = tokens(texts[0])
    assert (
        tags_to_spans(offsets, tagger.tag(model.featurize(texts[0], offsets)))
        == model.predict(docs(texts[:1]))[0]
    )
    loaded = load_backend(tmp_path)
    assert isinstance(loaded, SpanCRFBackend) and loaded.classes == LABELS
    assert loaded.predict(docs(texts)) == model.predict(docs(texts))
    for a, b in zip(loaded.predict_marginals(docs(texts)), model.predict_marginals(docs(texts)), strict=True):
        np.testing.assert_allclose(a.marginals, b.marginals)


def test_a_save_is_not_a_pickle_and_an_unfinished_one_does_not_load(model, tmp_path):
    model.save(tmp_path)
    assert not (tmp_path / MODEL_FILE).read_bytes().startswith(b"\x80")  # pickle's protocol marker
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError):
        load_backend(tmp_path)


def test_spans_become_bio_tags_and_come_back_on_the_stated_tokens():
    text = "Zoë 👍🏽 met José Núñez at 東京 Inc."
    offsets = tokens(text)
    words = [text[s:e] for s, e in offsets]
    assert words == ["Zoë", "👍🏽", "met", "José", "Núñez", "at", "東", "京", "Inc", "."]
    jose = text.index("José")
    spans = [
        {"start": 0, "end": 3, "label": "PER"},
        {"start": jose, "end": jose + len("José Núñez"), "label": "PER"},
        {"start": text.index("東"), "end": text.index("Inc") + 3, "label": "ORG"},
    ]
    tags, dropped = spans_to_tags(offsets, spans)
    assert tags == ["B-PER", "O", "O", "B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "O"]
    assert dropped == 0
    assert tags_to_spans(offsets, tags) == spans


def test_a_span_cut_inside_a_token_widens_and_an_overlapping_one_is_left_out():
    text = "Ana Lopez works"
    offsets = tokens(text)
    tags, dropped = spans_to_tags(
        offsets, [{"start": 1, "end": 6, "label": "PER"}, {"start": 4, "end": 9, "label": "ORG"}]
    )
    assert (tags, dropped) == (["B-PER", "I-PER", "O"], 1)


def test_a_stray_inside_tag_starts_an_entity():
    assert repair_tags(["O", "I-PER", "I-PER", "I-LOC", "O"]) == ["O", "B-PER", "I-PER", "B-LOC", "O"]


def test_marginals_sum_to_one_per_token_and_a_garbled_text_is_served_before_a_clear_one(model):
    clear = "Ryan Gallagher joined Pham, Garza and Garcia in East Crystalport."
    garbled = "Kelly brook and Parks said Marvinhaven Johnson fell in Lake."
    predicted = model.predict_marginals(docs([clear, garbled, ""]))
    for p in predicted[:2]:
        np.testing.assert_allclose(p.marginals.sum(axis=1), 1.0, atol=1e-6)
        assert len(p.confidence) == len(p.spans)
    assert predicted[2].spans == [] and predicted[2].marginals.shape == (0, len(tag_names(LABELS)))
    least = sequence_scores("least_confidence", [p.marginals for p in predicted])
    expected = 1.0 - predicted[0].marginals.max(axis=1).min()
    assert least[0] == pytest.approx(expected) and least[2] == 0.0
    assert least[1] > least[0]


def test_a_long_text_does_not_outrank_a_short_one_merely_by_being_long(model):
    sure = "Ryan Gallagher joined Pham, Garza and Garcia in East Crystalport."
    unsure = "Kelly brook and Parks said Marvinhaven Johnson fell in Lake."
    short, long_ = model.predict_marginals(docs([unsure, " ".join([sure] * 30)]))
    for strategy in ("least_confidence", "margin", "entropy"):
        a, b = sequence_scores(strategy, [short.marginals, long_.marginals])
        assert a > b, strategy


def test_the_backend_is_registered_and_refuses_unknown_labels_and_parameters():
    assert get_backend("span_crf") is SpanCRFBackend
    with pytest.raises(ValueError, match="not among the classes"):
        SpanCRFBackend().fit(docs(["Ana works"]), [[{"start": 0, "end": 3, "label": "XX"}]], classes=LABELS)
    with pytest.raises(TypeError, match="token offsets"):
        SpanCRFBackend().fit(["Ana works"], [[]], classes=LABELS)
    with pytest.raises(ValueError, match="unknown parameter"):
        SpanCRFBackend(C=1.0)
    with pytest.raises(RuntimeError):
        SpanCRFBackend().predict(docs(["text"]))
