"""The item browser benchmark's data (bench_item_browser.py), set-up that is never measured.

A text project with 4 labels and overlap 3, its seeded synthetic texts imported through
`annotate.importing.import_csv`, 3 annotations on nine items in ten written in one
INSERT … SELECT per slot (the items' counters as the queue would leave them), the final labels
and tallies by `annotate.quality.rebuild.project_quality_rebuild`, 1% gold, 3% suspicious, and
two model versions' predictions; or, with --lead-data, the lead benchmarks' project extended
with those predictions and suspicious labels. The bench's docstring says why each piece is so.
"""

import csv
import io
import random
import time

from bench.harness.stats import log

LABELS = ["positive", "negative", "neutral", "mixed"]
ANNOTATORS = 6
PROJECT_NAME = "bench: item browser"
SEED = 13


def _vocabulary(rng: random.Random, size: int = 2000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "qu", "da", "fe", "gi", "ho"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def texts_csv(items: int) -> tuple[bytes, dict[str, int]]:
    """`items` rows of id,text (seeded), and how many texts hold each word (for the search terms)."""
    rng = random.Random(SEED)
    vocabulary = _vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    documents: dict[str, int] = {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text"])
    for n in range(items):
        words = rng.choices(vocabulary, weights=weights, k=rng.randint(8, 30))
        for word in set(words):
            documents[word] = documents.get(word, 0) + 1
        writer.writerow([f"t{n}", " ".join(words).capitalize() + "."])
    return out.getvalue().encode(), documents


def search_terms(documents: dict[str, int], items: int) -> dict[str, str]:
    """A common word (in about 10% of the texts), a rare one (about 0.1%), and one in none."""

    def nearest(share: float) -> str:
        return min(documents, key=lambda w: (abs(documents[w] - share * items), w))

    return {"common": nearest(0.10), "rare": nearest(0.001), "absent": "xyzzyplugh"}


def _sql(cursor, sql: str, params=()) -> int:
    cursor.execute(sql, params)
    return cursor.rowcount


def data_build(*, items: int, lead, annotators: list) -> tuple[int, dict]:
    """The project and everything in it (see the module's docstring); (project id, facts)."""
    from django.db import connection, transaction

    from annotate.importing import import_csv
    from annotate.models import Annotation, Item, Label, Review, Tally
    from annotate.projects import membership_add, project_create
    from annotate.quality.rebuild import project_quality_rebuild

    facts: dict = {}
    project = project_create(
        name=PROJECT_NAME, task_type="text_classification", created_by=lead, labels=list(LABELS), overlap=3
    )
    for user in annotators:
        membership_add(project=project, user=user, role="annotator")
    data, documents = texts_csv(items)
    facts["search_terms"] = terms = search_terms(documents, items)
    facts["search_term_texts"] = {kind: documents.get(word, 0) for kind, word in terms.items()}
    started = time.perf_counter()
    imported = import_csv(
        project=project, file=io.BytesIO(data), filename="b.csv", text_column="text", id_column="id"
    )
    facts["import_s"] = round(time.perf_counter() - started, 2)
    assert imported.items_created == items, imported
    log(f"   imported {items:,} texts in {facts['import_s']} s")

    annotation = connection.ops.quote_name(Annotation._meta.db_table)
    item = connection.ops.quote_name(Item._meta.db_table)
    ids = [u.pk for u in annotators]
    labels = "(ARRAY[" + ", ".join(f"'{name}'" for name in LABELS) + "])"
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id) FROM {item} WHERE project_id = %s", [project.pk])
        base = cursor.fetchone()[0]
        written = 0
        for slot in range(3):
            # Annotator (rank + 2·slot) mod 6: three different annotators per item. Value: the
            # true label (rank mod 4) 70% of the time, else one of the three others.
            written += _sql(
                cursor,
                f"""INSERT INTO {annotation} (project_id, item_id, annotator_id, value, active_ms, created_at,
                        late, counted, rejected, source)
                    SELECT i.project_id, i.id, (%s::bigint[])[((i.id - %s + 2 * %s) %% 6) + 1],
                        jsonb_build_object('choices', jsonb_build_array(
                            {labels}[CASE WHEN h < 700 THEN (i.id - %s) %% 4
                                          ELSE ((i.id - %s) + 1 + h %% 3) %% 4 END + 1])),
                        500 + (h * 37) %% 20000, now() - (%s * interval '1 minute'), false, true, false, ''
                    FROM (SELECT id, project_id, abs(hashtext(id::text || '/' || %s::text)) %% 1000 AS h
                          FROM {item} WHERE project_id = %s AND (id - %s) %% 10 <> 0) i""",
                [ids, base, slot, base, base, 3 - slot, slot, project.pk, base],
            )
        _sql(
            cursor,
            f"UPDATE {item} SET annotation_count = 3, is_complete = true"
            " WHERE project_id = %s AND (id - %s) %% 10 <> 0",
            [project.pk, base],
        )
    facts["annotations"] = written
    log(f"   {written:,} annotations in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    models = {"Item": Item, "Annotation": Annotation, "Label": Label, "Tally": Tally, "Review": Review}
    project_quality_rebuild(project=project, models=models)
    log(f"   final labels and tallies (project_quality_rebuild) in {time.perf_counter() - started:.1f} s")
    with transaction.atomic(), connection.cursor() as cursor:
        facts["gold"] = _sql(
            cursor,
            f"UPDATE {item} SET pick_kind = 'gold', gold_value = final_value, final_source = 'gold',"
            " review_state = 'none'"
            " WHERE project_id = %s AND (id - %s) %% 100 = 7 AND final_value IS NOT NULL",
            [project.pk, base],
        )
    facts["suspicious"] = suspicion_mark(project=project, base=base)
    facts["predictions"] = predictions_build(project=project, base=base)
    vacuum_analyze()
    return project.pk, facts


def vacuum_analyze() -> None:
    """What autovacuum would do after these bulk writes (it is off on the bench machines): dead
    rows marked free and the visibility map set, so that counts can read indexes alone."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def predictions_build(*, project, base: int, versions: list | None = None) -> int:
    """Predictions for every item from two model versions (the second made active): these two of
    `versions` (ModelVersion ids), or two new ones."""
    from django.db import connection, transaction

    from annotate.models import Item
    from training.models import DatasetSnapshot, ModelVersion, Prediction

    labels = "(ARRAY[" + ", ".join(f"'{name}'" for name in LABELS) + "])"
    if versions is None:
        snapshot = DatasetSnapshot.objects.create(
            project=project, classes=LABELS, item_ids=[], values=[], validation_ids=[], fingerprint="bench"
        )
        versions = [
            ModelVersion.objects.create(
                project=project, number=number, backend="bench", dataset=snapshot, artifact_path="bench"
            ).pk
            for number in (1, 2)
        ]
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for salt, version_id in enumerate(versions[-2:], start=1):
            written += _sql(
                cursor,
                f"""INSERT INTO {connection.ops.quote_name(Prediction._meta.db_table)}
                        (item_id, model_version_id, value, probabilities, score, uncertainty)
                    SELECT id, %s, jsonb_build_object('choices', jsonb_build_array(
                            {labels}[CASE WHEN s >= 400 THEN (id - %s) %% 4
                                          ELSE (id - %s + 1) %% 4 END + 1])),
                        '[]'::jsonb, s / 1000.0, 1 - s / 1000.0
                    FROM (SELECT id, ((id * 2654435761 + %s * 7919) %% 1000) AS s
                          FROM {connection.ops.quote_name(Item._meta.db_table)} WHERE project_id = %s) i
                    ON CONFLICT (item_id, model_version_id) DO NOTHING""",
                [version_id, base, base, salt, project.pk],
            )
        ModelVersion.objects.filter(project=project).update(is_active=False)
        ModelVersion.objects.filter(pk=versions[-1]).update(is_active=True)
    return written


def suspicion_mark(*, project, base: int) -> int:
    """3% of the labeled items suspicious, with the model's alternative, as training writes them."""
    from django.db import connection, transaction

    from annotate.models import Item

    labels = "(ARRAY[" + ", ".join(f"'{name}'" for name in LABELS) + "])"
    with transaction.atomic(), connection.cursor() as cursor:
        return _sql(
            cursor,
            f"UPDATE {connection.ops.quote_name(Item._meta.db_table)}"
            " SET suspicion = ((id * 40503) %% 997) / 997.0,"
            " suspect_value = jsonb_build_object('choices',"
            f" jsonb_build_array({labels}[((id - %s) + 2) %% 4 + 1]))"
            " WHERE project_id = %s AND (id - %s) %% 33 = 5 AND final_value IS NOT NULL",
            [base, project.pk, base],
        )


def lead_data_extend(built) -> tuple[int, dict, object, list]:
    """The lead's project (bench/harness/lead_data.py, every row through the services) with what
    this benchmark also needs, written as training would: predictions of an active version and
    suspicious labels. (project id, facts, lead, annotators)."""
    from collections import Counter

    from django.contrib.auth import get_user_model

    from annotate.models import Item, Project

    project = Project.objects.get(pk=built.project_id)
    items = Item.objects.filter(project=project)
    base = items.order_by("id").values_list("id", flat=True).first()
    facts = {"lead_data": built.name, "annotations": built.annotations, "reviews": built.reviews}
    if not items.filter(suspicion__isnull=False).exists():
        facts["predictions"] = predictions_build(project=project, base=base, versions=built.model_version_ids)
        facts["suspicious"] = suspicion_mark(project=project, base=base)
        vacuum_analyze()
    # Search terms from a sample of its texts, which draw 6–18 of 29 words: the least frequent
    # single word is in about a third of them (no word is rarer), a run of three in about 0.1%.
    texts = list(items.order_by("id").values_list("text", flat=True)[::20])
    words, runs = Counter(), Counter()
    for text in texts:
        seen = text.split()[1:]
        words.update(set(seen))
        runs.update({" ".join(seen[i : i + 3]) for i in range(len(seen) - 2)})
    terms = {
        "common": min(words, key=lambda w: (words[w], w)),
        "rare": min(runs, key=lambda r: (abs(runs[r] / len(texts) - 0.001), r)),
        "absent": "xyzzyplugh",
    }
    facts["search_terms"] = terms
    facts["search_term_texts"] = {kind: items.filter(text__icontains=q).count() for kind, q in terms.items()}
    users = get_user_model().objects
    lead = users.get(username=built.lead_username)
    annotators = list(users.filter(pk__in=built.annotator_ids).order_by("id"))
    return project.pk, facts, lead, annotators
