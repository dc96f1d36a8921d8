"""The data a benchmark measures on: the reviews CSV (the Rotten Tomatoes sentences repeated to N
rows), bulk labels written straight to the database (set-up, not measured), and the text and image
projects of the training benchmarks.

Labels inserted here leave the items' counters as the queue would have.
"""

import csv
import io
import time

from bench.harness.digits import digit_pngs_augmented
from bench.harness.memory import MIB

REVIEW_LABELS = ["fresh", "rotten"]


def reviews_csv(items: int, reviews: list | None = None) -> bytes:
    """`items` rows of id,text: the Rotten Tomatoes sentences, repeated, each prefixed with its index.

    `reviews`: the demo's reviews when the caller already has them (reading them takes a while).
    """
    from annotate.demo import rotten_tomatoes_reviews

    sentences = [review.text for review in (reviews or rotten_tomatoes_reviews())]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text"])
    for n in range(items):
        writer.writerow([str(n), f"{n}: {sentences[n % len(sentences)]}"])
    return out.getvalue().encode("utf-8")


def annotations_insert(*, project_id: int, annotator_id: int, limit: int | None, value: dict) -> int:
    """Set-up, not measured: `annotator_id` labels the project's first `limit` items (all if None)
    in one INSERT … SELECT, and the items' counters follow, as the queue would have left them."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotate.models import Annotation, Item

    given = {"project_id": "i.project_id", "item_id": "i.id"}
    chosen = {
        "annotator_id": annotator_id,
        "value": value,
        "active_ms": 1500,
        "created_at": timezone.now(),
        "late": False,
        "counted": True,
        "source": "",
    }
    columns, expressions, params = [], [], []
    for f in Annotation._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column))
        if f.attname in given:
            expressions.append(given[f.attname])
            continue
        raw = chosen[f.attname] if f.attname in chosen else f.get_default()
        expressions.append("%s")
        params.append(f.get_db_prep_save(raw, connection))
    annotation, item = Annotation._meta.db_table, Item._meta.db_table
    limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE bench_chosen ON COMMIT DROP AS SELECT i.id FROM {item} i"
            f" WHERE i.project_id = %s ORDER BY i.id{limit_sql}",
            [project_id],
        )
        cursor.execute(
            f"INSERT INTO {annotation} ({', '.join(columns)}) SELECT {', '.join(expressions)}"
            f" FROM {item} i JOIN bench_chosen c ON c.id = i.id",
            params,
        )
        inserted = cursor.rowcount
        cursor.execute(
            f"UPDATE {item} i SET annotation_count = i.annotation_count + 1,"
            " is_complete = i.annotation_count + 1 >= p.overlap"
            f" FROM bench_chosen c, annotate_project p WHERE c.id = i.id AND p.id = i.project_id"
        )
    return inserted


def labels_insert(*, project, labeler, item_ids: list[int], choices: list[str]) -> int:
    """Set-up, not measured: `labeler` labels these items (one counted annotation each, overlap 1)."""
    from django.db import transaction
    from django.utils import timezone

    from annotate.models import Annotation, Item

    now = timezone.now()
    with transaction.atomic():
        Annotation.objects.bulk_create(
            [
                Annotation(
                    project=project,
                    item_id=item_id,
                    annotator=labeler,
                    value={"choices": [choice]},
                    active_ms=1500,
                    created_at=now,
                    counted=True,
                )
                for item_id, choice in zip(item_ids, choices, strict=True)
            ],
            batch_size=5000,
        )
        by_choice: dict[str, list[int]] = {}
        for item_id, choice in zip(item_ids, choices, strict=True):
            by_choice.setdefault(choice, []).append(item_id)
        # The columns a submit keeps (annotate/quality/): one vote is a "single" final label.
        for choice, ids in by_choice.items():
            Item.objects.filter(id__in=ids).update(
                annotation_count=1,
                is_complete=True,
                final_value={"choices": [choice]},
                final_source="single",
                review_state="queued",
            )
    return len(item_ids)


def text_project_create(*, items: int, labeled: int, lead, labeler) -> tuple[object, dict]:
    """The text project: `items` sentences imported from a CSV, the first `labeled` labeled truly."""
    from annotate.demo import rotten_tomatoes_reviews
    from annotate.importing import import_csv
    from annotate.models import Item
    from annotate.projects import project_create

    reviews = rotten_tomatoes_reviews()
    data = reviews_csv(items, reviews)
    project = project_create(
        name=f"Reviews ({items:,})",
        task_type="text_classification",
        created_by=lead,
        labels=list(REVIEW_LABELS),
    )
    started = time.perf_counter()
    import_csv(
        project=project, file=io.BytesIO(data), filename="reviews.csv", text_column="text", id_column="id"
    )
    import_seconds = time.perf_counter() - started
    head = list(
        Item.objects.filter(project=project).order_by("id").values_list("id", "external_id")[:labeled]
    )
    choices = [reviews[int(external_id) % len(reviews)].category for _, external_id in head]
    labels_insert(project=project, labeler=labeler, item_ids=[i for i, _ in head], choices=choices)
    return project, {
        "items": items,
        "labeled": labeled,
        "csv_mib": round(len(data) / MIB, 1),
        "import_seconds": round(import_seconds, 2),
        "sentences": len(reviews),
    }


def image_project_create(*, items: int, labeled: int, lead, labeler, seed: int) -> tuple[object, dict]:
    """The image project: `items` augmented digits imported as PNGs, the first `labeled` labeled truly."""
    from annotate.importing import import_images
    from annotate.models import Item
    from annotate.projects import project_create

    started = time.perf_counter()
    pngs, digits = digit_pngs_augmented(count=items, seed=seed)
    make_seconds = time.perf_counter() - started
    project = project_create(
        name=f"Digits ({items:,})",
        task_type="image_classification",
        created_by=lead,
        labels=[str(n) for n in range(10)],
    )
    names = [f"digit-{n:05d}.png" for n in range(items)]
    digit_of = dict(zip(names, digits, strict=True))
    started = time.perf_counter()
    import_images(
        project=project, files=[(name, io.BytesIO(png)) for name, png in zip(names, pngs, strict=True)]
    )
    import_seconds = time.perf_counter() - started
    head = list(
        Item.objects.filter(project=project).order_by("id").values_list("id", "external_id")[:labeled]
    )
    labels_insert(
        project=project,
        labeler=labeler,
        item_ids=[i for i, _ in head],
        choices=[str(digit_of[name]) for _, name in head],
    )
    return project, {
        "items": items,
        "labeled": labeled,
        "png_kib_mean": round(sum(map(len, pngs)) / len(pngs) / 1024, 2),
        "augment_seconds": round(make_seconds, 2),
        "import_seconds": round(import_seconds, 2),
    }
