"""The lead's benchmark project: items imported and annotations submitted through annotate's own
services, built once into a kept PostgreSQL database and copied for each run.

    from bench.harness.lead_data import LeadSpec, lead_database_ready
    project = lead_database_ready(cache_url=..., run_url=..., spec=LeadSpec(), keep=True, env=env)

- `lead_project_build(spec=...)` builds the project in the database Django is set up on (or finds
  it there, built by an earlier run): the pure build, for a caller that manages its own database.
- `lead_database_ready(...)` is what a benchmark calls before it sets Django up: it builds the
  project into `cache_url` in a subprocess (unless `keep` and it is there already), then copies
  that database to `run_url` (CREATE DATABASE … TEMPLATE, a file copy), so every run measures the
  same data, however many annotations an earlier run added to its copy. The caller then points
  its servers and its own Django at `run_url`.

What the build does, in this order, every step through the service a user's action goes through:

1. users (a lead, a reviewer, `annotators` annotators; one password hash, PASSWORD) and the project
   (`project_create`, labels LEAD_LABELS, overlap `overlap`, gold share `gold_share`), members
   through `membership_add`;
2. `items` text items: one CSV through annotate's import service (`importing.import_csv`: the row
   rules and the COPY writer);
3. `gold_items` items marked gold with their true value (`annotate.gold.item_gold_set`);
4. `model_versions` model versions recorded (rows only, no artifacts: they name the proposals);
5. `annotations` annotations, the annotators in turn, each cycle `queue.assignment_next` then
   `queue.annotation_submit` in this process, with the clock (`now=`) moved evenly over `days`
   days that end yesterday, so the per-day charts have history. Each annotator has an accuracy
   (0.95 down to 0.6) against a hidden true label and a typical time per item (3.5 to 20 s,
   log-normal); once the first model version exists, most items come with a proposal, which an
   annotator keeps half the time. The gold share is drawn from a seeded generator, so two builds
   with the same spec are the same; ANALYZE every ANALYZE_EVERY annotations, as autovacuum would;
6. `reviews` review decisions on complete items with a disagreement (`review.review_decide`): the
   annotation giving the true label accepted, or a correction to it, and one in six a reject;
7. ANALYZE, and the project renamed to its final name: a build that dies half-way is never reused.

Room for the benchmark's own annotations: at overlap 3, 100,000 items take exactly 300,000 counted
annotations, but gold answers are outside overlap (each annotator answers every gold item once),
and each reject reopens its item, so a build leaves about `annotators × gold_items − 3 × gold_items
+ rejects` slots open (2,000 − 750 + ~330 with the defaults).
"""

import io
import json
import math
import os
import random
import subprocess
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bench.harness import REPO
from bench.harness.stats import log

PASSWORD = "bench-password-not-secret"  # the same as bench.harness.api's users
# ANALYZE every so many annotations, as autovacuum would on a running studio (it is off on these
# machines). Without it the assignments table keeps the statistics of an empty table, and the
# prepared statements of the queue go to generic plans that cannot use its partial indexes
# (`WHERE status = 'open'`, with the status a parameter): measured at 80,000 assignments, the
# expiry UPDATE took 18.5 ms and the held-leases SELECT 7.1 ms (1.5 ms with a custom plan), each
# growing with the table, and the build slowed from 110 to 40 cycles/s.
ANALYZE_EVERY = 10_000
LEAD_LABELS = ["positive", "negative", "neutral", "mixed"]
_TRUE_WEIGHTS = [0.45, 0.3, 0.15, 0.1]
_ACCURACY = [0.95, 0.92, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6]
_SECONDS = [3.5, 5, 6, 8, 10, 12, 15, 20]
# Short sentences for the items' text (the import's work, not their meaning, is what counts here).
_WORDS = [
    "the", "a", "film", "story", "actor", "plot", "scene", "music", "long", "short", "funny", "sad", "slow",
    "bright", "dark", "warm", "cold", "ending", "start", "characters", "dialogue", "camera", "light", "score",
    "cast", "director", "pace", "moment", "heart",
]  # fmt: skip


@dataclass(frozen=True)
class LeadSpec:
    """What the lead's project holds; its name says so, and a build is reused only when equal."""

    items: int = 100_000
    annotations: int = 300_000
    annotators: int = 8
    overlap: int = 3
    gold_items: int = 250
    gold_share: float = 0.02
    model_versions: int = 3
    reviews: int = 2_000
    days: int = 30
    seed: int = 13

    @property
    def name(self) -> str:
        return (
            f"lead bench {self.items}i {self.annotations}a {self.annotators}u o{self.overlap}"
            f" g{self.gold_items}/{self.gold_share} v{self.model_versions} r{self.reviews}"
            f" d{self.days} s{self.seed}"
        )


@dataclass
class LeadProject:
    """The built project as a benchmark needs it: ids, usernames (password PASSWORD), counts."""

    project_id: int
    name: str
    lead_username: str
    reviewer_username: str
    annotator_usernames: list[str]
    annotator_ids: list[int]
    items: int
    annotations: int
    gold_items: int
    reviews: int
    model_version_ids: list[int]
    reused: bool
    build_seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds; {} if reused


def lead_project_build(*, spec: LeadSpec = LeadSpec(), progress=log) -> LeadProject:
    """Build the lead's project in the database Django is set up on (migrated), or return the one
    an earlier build of the same spec left there. Slow: about 40 minutes at the default size on
    2 cores, almost all of it the 300,000 next-and-submit cycles."""
    from annotate.models import Project

    found = Project.objects.filter(name=spec.name).first()
    if found is not None:
        progress(f"reusing {spec.name!r} (project {found.pk})")
        return _describe(found, spec, reused=True, seconds={})
    Project.objects.filter(name=spec.name + " (building)").delete()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    project, lead, reviewer, annotators = _project(spec)
    seconds["project"] = time.perf_counter() - started
    _timed(seconds, "import", progress, lambda: _import(project, spec))
    truth = _truth(project, spec)
    _timed(seconds, "gold", progress, lambda: _gold(project, spec, truth))
    versions = _versions(project, spec)
    _timed(
        seconds,
        "annotations",
        progress,
        lambda: _annotate(project, annotators, spec, truth, versions, progress),
    )
    _timed(seconds, "reviews", progress, lambda: _review(project, reviewer, spec, truth))
    _timed(seconds, "analyze", progress, _analyze)
    from annotate.projects import project_update

    project_update(project=project, name=spec.name)
    return _describe(project, spec, reused=False, seconds=seconds)


def lead_database_ready(
    *,
    cache_url: str,
    run_url: str,
    spec: LeadSpec = LeadSpec(),
    keep: bool,
    env: dict,
) -> LeadProject:
    """The lead's project in a fresh copy of the kept database: build it into `cache_url` (in a
    subprocess; dropped and created first unless `keep`), then copy that to `run_url`. `env` is
    the benchmark's environment (DJANGO_DEBUG=0, a var folder); DATABASE_URL is set here."""
    if not keep or not _database_exists(cache_url):
        log(f"PostgreSQL database {cache_url}: drop and create")
        _database_create(cache_url)
    build_env = {**env, "DATABASE_URL": cache_url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=build_env, check=True
    )
    out = Path(env.get("LABELLOOP_VAR_DIR", "/tmp")) / "lead-project.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.harness.lead_data",
            "--spec",
            json.dumps(asdict(spec)),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=build_env,
        check=True,
    )
    project = LeadProject(**json.loads(out.read_text()))
    started = time.perf_counter()
    _database_copy(cache_url, run_url)
    log(f"copied {cache_url} to {run_url} in {time.perf_counter() - started:.1f} s")
    return project


# --- the build's steps -------------------------------------------------------------------------


def _timed(seconds: dict, phase: str, progress, step) -> None:
    started = time.perf_counter()
    step()
    seconds[phase] = round(time.perf_counter() - started, 1)
    progress(f"   {phase}: {seconds[phase]:.1f} s")


def _project(spec: LeadSpec):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotate.projects import membership_add, project_create

    user_model = get_user_model()
    hashed = make_password(PASSWORD)

    def user(username: str):
        found, _ = user_model.objects.get_or_create(username=username, defaults={"password": hashed})
        return found

    lead, reviewer = user("lead-bench-lead"), user("lead-bench-reviewer")
    annotators = [user(f"lead-bench-annotator{n}") for n in range(1, spec.annotators + 1)]
    project = project_create(
        name=spec.name + " (building)",
        task_type="text_classification",
        labels=LEAD_LABELS,
        overlap=spec.overlap,
        gold_share=spec.gold_share,
        created_by=lead,
    )
    membership_add(project=project, user=reviewer, role="reviewer")
    for annotator in annotators:
        membership_add(project=project, user=annotator, role="annotator")
    return project, lead, reviewer, annotators


def _import(project, spec: LeadSpec) -> None:
    from annotate import importing

    rng = random.Random(spec.seed)
    lines = ["id,text"]
    for n in range(spec.items):
        lines.append(f"{n},{n}: {' '.join(rng.choices(_WORDS, k=rng.randint(6, 18)))}")
    data = ("\n".join(lines) + "\n").encode()
    result = importing.import_csv(project=project, file=io.BytesIO(data), filename="lead.csv", id_column="id")
    assert result.items_created == spec.items, result


def _truth(project, spec: LeadSpec) -> dict[int, str]:
    """The hidden true label of each item, by item id (seeded from the external id)."""
    rng = random.Random(spec.seed + 1)
    labels = rng.choices(LEAD_LABELS, weights=_TRUE_WEIGHTS, k=spec.items)
    rows = project.items.values_list("id", "external_id")
    return {item_id: labels[int(external_id)] for item_id, external_id in rows}


def _gold(project, spec: LeadSpec, truth: dict[int, str]) -> None:
    from annotate.gold import item_gold_set

    ids = sorted(truth)
    step = max(len(ids) // max(spec.gold_items, 1), 1)
    for item_id in ids[::step][: spec.gold_items]:
        item_gold_set(project=project, item_id=item_id, value={"choices": [truth[item_id]]})


def _versions(project, spec: LeadSpec) -> list[int]:
    """Model version rows (no artifacts, never active): they give the proposals a version number."""
    from training.models import DatasetSnapshot, ModelVersion

    snapshot = DatasetSnapshot.objects.create(
        project=project, classes=LEAD_LABELS, item_ids=[], values=[], validation_ids=[], fingerprint="lead"
    )
    return [
        ModelVersion.objects.create(
            project=project, number=n, backend="bench", dataset=snapshot, artifact_path=f"bench/none-{n}"
        ).pk
        for n in range(1, spec.model_versions + 1)
    ]


def _annotate(project, annotators, spec: LeadSpec, truth, versions: list[int], progress) -> None:
    from django.db import connection
    from django.utils import timezone

    from annotate import queue
    from annotate.models import Membership, Project

    # Set-up, not measured: the build's commits need not wait for the disk (a crash would only
    # lose the half-built project, which is never reused); every statement is the studio's own.
    # Waiting for each commit's WAL flush was most of a cycle here: 8.8 ms against about 3.
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    # The gold share is a random draw in the queue: seeded here, so two builds agree.
    queue._random = random.Random(spec.seed + 2)
    rng = random.Random(spec.seed + 3)
    project = Project.objects.get(pk=project.pk)  # the import and gold marking moved its epoch
    members = {m.user_id: m for m in Membership.objects.filter(project=project)}
    label_names = list(project.labels.values_list("name", flat=True))
    end = timezone.make_aware(datetime.combine(timezone.localdate(), datetime.min.time()))
    start = end - timedelta(days=spec.days)
    step = timedelta(days=spec.days) / max(spec.annotations, 1)
    k = len(annotators)
    accuracy = [_ACCURACY[i % len(_ACCURACY)] for i in range(k)]
    typical = [math.log(_SECONDS[i % len(_SECONDS)] * 1000) for i in range(k)]
    version_from = [
        int(spec.annotations * (0.3 + 0.5 * v / max(len(versions), 1))) for v in range(len(versions))
    ]
    version_right = [0.7 + 0.18 * v / max(len(versions) - 1, 1) for v in range(len(versions))]
    _analyze()
    done = idle = 0
    began = time.perf_counter()
    n = 0
    while done < spec.annotations:
        i = n % k
        user = annotators[i]
        now = start + step * done
        n += 1
        lease = queue.assignment_next(project=project, annotator=user, membership=members[user.pk], now=now)
        if lease is None:
            idle += 1
            if idle >= k:
                raise RuntimeError(f"the queue ran dry after {done:,} annotations")
            continue
        idle = 0
        true = truth[lease.item.pk]
        value = true if rng.random() < accuracy[i] else rng.choice([x for x in LEAD_LABELS if x != true])
        proposal = version = None
        live = [v for v, first in enumerate(version_from) if done >= first]
        if live and rng.random() < 0.9 and lease.item.pick_kind != "gold":
            v = live[-1]
            right = rng.random() < version_right[v]
            proposed = true if right else rng.choice([x for x in LEAD_LABELS if x != true])
            version, proposal = versions[v], {"choices": [proposed]}
            if rng.random() < 0.5:
                value = proposed
        queue.annotation_submit(
            project=project,
            item_id=lease.item.pk,
            annotator=user,
            membership=members[user.pk],
            value={"choices": [value]},
            active_ms=int(rng.lognormvariate(typical[i], 0.5)),
            proposal_value=proposal,
            proposal_model_version_id=version,
            label_names=label_names,
            now=now,
        )
        done += 1
        if done % ANALYZE_EVERY == 0:
            _analyze()
        if done % 20_000 == 0:
            rate = done / (time.perf_counter() - began)
            left = (spec.annotations - done) / rate / 60
            progress(f"   {done:,} annotations ({rate:,.0f}/s, {left:.0f} min left)")


def _review(project, reviewer, spec: LeadSpec, truth) -> None:
    from django.utils import timezone

    from annotate.models import Annotation, Item, Project
    from annotate.review import review_decide

    project = Project.objects.get(pk=project.pk)
    rng = random.Random(spec.seed + 4)
    now = timezone.make_aware(datetime.combine(timezone.localdate(), datetime.min.time())) - timedelta(
        hours=1
    )
    items = list(
        Item.objects.filter(project=project, is_complete=True, disagreement=True, pick_kind="queue")
        .order_by("id")
        .values_list("id", flat=True)[: spec.reviews]
    )
    for item_id in items:
        annotations = list(Annotation.objects.filter(item_id=item_id, counted=True).order_by("id"))
        true = {"choices": [truth[item_id]]}
        right = next((a for a in annotations if a.value == true), None)
        wrong = next((a for a in annotations if a.value != true), None)
        if wrong is not None and rng.random() < 1 / 6:
            decision = {"decision": "reject", "annotation_id": wrong.pk, "reason": "not what the text says"}
        elif right is not None:
            decision = {"decision": "accept", "annotation_id": right.pk}
        else:
            decision = {"decision": "correct", "value": true}
        review_decide(
            project=project, item_id=item_id, reviewer=reviewer, supersedes=None, now=now, **decision
        )


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _describe(project, spec: LeadSpec, *, reused: bool, seconds: dict) -> LeadProject:
    from annotate.models import Annotation, Item, Membership, Review
    from training.models import ModelVersion

    members = Membership.objects.filter(project=project).select_related("user").order_by("id")
    annotators = [m.user for m in members if m.role == "annotator"]
    return LeadProject(
        project_id=project.pk,
        name=spec.name,
        lead_username=next(m.user.username for m in members if m.role == "manager"),
        reviewer_username=next(m.user.username for m in members if m.role == "reviewer"),
        annotator_usernames=[u.username for u in annotators],
        annotator_ids=[u.pk for u in annotators],
        items=Item.objects.filter(project=project).count(),
        annotations=Annotation.objects.filter(project=project).count(),
        gold_items=Item.objects.filter(project=project, pick_kind="gold").count(),
        reviews=Review.objects.filter(project=project).count(),
        model_version_ids=list(
            ModelVersion.objects.filter(project=project).order_by("number").values_list("pk", flat=True)
        ),
        reused=reused,
        build_seconds=seconds,
    )


# --- databases -----------------------------------------------------------------------------------


def _maintenance(database_url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit(f"{database_url!r} names no database")
    return urllib.parse.urlunsplit(parts._replace(path="/postgres")), name


def _database_exists(database_url: str) -> bool:
    import psycopg

    maintenance, name = _maintenance(database_url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _database_create(database_url: str, *, template: str | None = None) -> None:
    import psycopg
    from psycopg import sql

    maintenance, name = _maintenance(database_url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )


def _database_copy(cache_url: str, run_url: str) -> None:
    _, cache = _maintenance(cache_url)
    _database_create(run_url, template=cache)


def _main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Build (or find) the lead's benchmark project.")
    parser.add_argument("--spec", default="{}", help="LeadSpec fields as JSON")
    parser.add_argument("--out", required=True, help="where to write the LeadProject as JSON")
    args = parser.parse_args()
    from bench.harness.studio import django_setup

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django_setup()
    project = lead_project_build(spec=LeadSpec(**json.loads(args.spec)))
    Path(args.out).write_text(json.dumps(asdict(project)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
