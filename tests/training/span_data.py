"""A named-entity data set the span tests make: templated sentences with Faker's names, places and
organisations, and two baselines the span model must beat.

- Entities: PER from `Faker.name()`, ORG from `company()`, LOC from `city()` (en_US, seeded).
  The test split's templates and entity strings are disjoint from the training split's: no test
  sentence is built from a training template, and no test entity's text is a training entity's.
- Offsets are code points of the sentence, as the studio stores them; a template's slots are
  filled left to right, so each span is known exactly.
"""

import re
from collections import Counter
from dataclasses import dataclass

from faker import Faker

from annotate.tokens import tokens

LABELS = ["PER", "ORG", "LOC"]

TRAIN_TEMPLATES = [
    "{PER} joined {ORG} in {LOC}.",
    "Yesterday {PER} flew to {LOC} to meet the board of {ORG}.",
    "{ORG} opened a new office in {LOC} last spring.",
    "According to {PER}, the mayor of {LOC} is unhappy.",
    "{PER} and {PER} founded {ORG} together.",
    "The report by {ORG} was written by {PER}.",
    "Shares of {ORG} fell after {PER} resigned.",
    "{PER} grew up in {LOC} before moving to {LOC}.",
    "Police in {LOC} arrested a man on Tuesday.",
    "{ORG} hired {PER} as its new chief executive.",
    "Nothing much happened in {LOC} this week.",
    "A spokesperson for {ORG} declined to comment.",
    "We spoke with {PER} about the weather.",
    "The festival in {LOC} drew large crowds, said {PER}.",
]

TEST_TEMPLATES = [
    "{PER} left {ORG} for a job in {LOC}.",
    "Last year {ORG} moved its headquarters from {LOC} to {LOC}.",
    "In an interview, {PER} praised the staff of {ORG}.",
    "Residents of {LOC} welcomed {PER} on Friday.",
    "{ORG} announced that {PER} will lead the team.",
    "Nobody expected {PER} to win the race in {LOC}.",
]

_SLOT = re.compile(r"\{(PER|ORG|LOC)\}")


@dataclass(frozen=True)
class Sentence:
    text: str
    spans: list[dict]  # {"start", "end", "label"}, sorted


def _fill(template: str, pick) -> Sentence:
    text, spans, at = "", [], 0
    for match in _SLOT.finditer(template):
        text += template[at : match.start()]
        entity = pick(match.group(1))
        spans.append({"start": len(text), "end": len(text) + len(entity), "label": match.group(1)})
        text += entity
        at = match.end()
    return Sentence(text=text + template[at:], spans=spans)


def _pool(fake: Faker, n: int, avoid: set[str]) -> dict[str, list[str]]:
    make = {"PER": fake.name, "ORG": fake.company, "LOC": fake.city}
    pools: dict[str, list[str]] = {}
    for label, draw in make.items():
        names: list[str] = []
        while len(names) < n:
            name = draw()
            if name not in avoid and name not in names:
                names.append(name)
        pools[label] = names
    return pools


def make_split(*, n_train: int = 300, n_test: int = 150, seed: int = 7) -> tuple[list, list]:
    """(train, test) sentences: training templates and names, then test templates and new names."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    train_pool = _pool(fake, 150, avoid=set())
    used = {name for names in train_pool.values() for name in names}
    test_pool = _pool(fake, 100, avoid=used)

    def sentences(templates, pool, n, offset):
        out = []
        for i in range(n):
            state = {"i": 0}

            def pick(label, i=i, state=state):
                state["i"] += 1
                names = pool[label]
                return names[(i * 7 + state["i"] * 13 + offset) % len(names)]

            out.append(_fill(templates[i % len(templates)], pick))
        return out

    return sentences(TRAIN_TEMPLATES, train_pool, n_train, 0), sentences(TEST_TEMPLATES, test_pool, n_test, 3)


# Baselines, scored on the same split ------------------------------------------------------------


def capitalised_tagger(train: list[Sentence]):
    """Tag every maximal run of capitalised tokens as one entity. Its label: the label most common
    in training for the run's last token (among training entities that end with that token's
    text), else the label most common in training overall."""
    by_last: dict[str, Counter] = {}
    overall: Counter = Counter()
    for sentence in train:
        for span in sentence.spans:
            last = [sentence.text[s:e] for s, e in tokens(sentence.text) if s < span["end"]][-1]
            by_last.setdefault(last, Counter())[span["label"]] += 1
            overall[span["label"]] += 1
    default = overall.most_common(1)[0][0]

    def tag(text: str) -> list[dict]:
        spans, run = [], []
        for start, end in [*tokens(text), (len(text), len(text))]:
            word = text[start:end]
            if word[:1].isupper():
                run.append((start, end))
                continue
            if run:
                last = text[run[-1][0] : run[-1][1]]
                label = by_last[last].most_common(1)[0][0] if last in by_last else default
                spans.append({"start": run[0][0], "end": run[-1][1], "label": label})
                run = []
        return spans

    return tag


def gazetteer_tagger(train: list[Sentence]):
    """Find the training entities' exact texts (longest first, not overlapping, on token
    boundaries), each with the label it had most often in training."""
    labels: dict[str, Counter] = {}
    for sentence in train:
        for span in sentence.spans:
            labels.setdefault(sentence.text[span["start"] : span["end"]], Counter())[span["label"]] += 1
    names = sorted(labels, key=len, reverse=True)

    def tag(text: str) -> list[dict]:
        bounds = {s for s, _ in tokens(text)}, {e for _, e in tokens(text)}
        taken: list[tuple[int, int]] = []
        spans = []
        for name in names:
            for match in re.finditer(re.escape(name), text):
                s, e = match.span()
                if s in bounds[0] and e in bounds[1] and all(e <= a or s >= b for a, b in taken):
                    taken.append((s, e))
                    spans.append({"start": s, "end": e, "label": labels[name].most_common(1)[0][0]})
        return sorted(spans, key=lambda sp: sp["start"])

    return tag
