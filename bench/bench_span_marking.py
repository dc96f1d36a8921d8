"""Mark 50 spans by keyboard in a 50,000-character document, in Debian's chromium.

Measures, inside the page, each mark's time from the label hotkey's keydown to the mark painted:
performance.now() in a capturing keydown listener, then performance.now() in the
requestAnimationFrame that follows the editor's change (a MutationObserver on the text's
data-span-count). Target: p95 ≤ 100 ms (issue 14). Then submits and checks that the server
stored exactly the 50 spans.

Two documents, each in a project of its own: Faker's sentences (seeded) in paragraphs of 4 to 9
sentences (the editor draws one block per line, so a mark redraws only its paragraph), and the
same text as one paragraph without line breaks (the editor's worst case: every redraw lays out
the whole document).

Load model: one annotator, closed loop: per span the caret moves --step tokens (ArrowRight),
the selection grows by 0 or 1 token (Shift+ArrowRight), then the hotkey; the next key waits
until the mark is painted. The server (gunicorn, 1 process × 4 threads, SQLite in a temporary
var folder, DEBUG off) is not on the measured path: marking is the page's alone.

    .venv/bin/python -m bench.bench_span_marking
    .venv/bin/python -m bench.bench_span_marking --spans 20 --step 40 --json out.json
"""

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a file (python bench/<script>.py): make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO
from bench.harness.machine import describe
from bench.harness.servers import Gunicorn
from bench.harness.stats import log, percentile
from bench.harness.studio import django_setup, environment_apply, studio_environment, var_dir_temporary

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TARGET_MARK_MS = 100
LABELS = ["PER", "LOC", "ORG"]  # hotkeys 1, 2, 3
USERNAME = "marker"
PASSWORD = "bench-span-marking"

# Times each hotkey's keydown to the frame after the mark changes the span count.
OBSERVER = """
() => {
  window.__marks = [];
  let pressedAt = null;
  document.addEventListener('keydown', (event) => {
    if (['1', '2', '3'].includes(event.key)) pressedAt = performance.now();
  }, true);
  const text = document.querySelector('[data-item-text]');
  let count = text.dataset.spanCount;
  new MutationObserver(() => {
    if (pressedAt === null || text.dataset.spanCount === count) return;
    count = text.dataset.spanCount;
    const t0 = pressedAt;
    pressedAt = null;
    requestAnimationFrame(() => window.__marks.push(performance.now() - t0));
  }).observe(text, { attributes: true, attributeFilter: ['data-span-count'] });
}
"""


def document_text(n_chars: int, *, paragraphs: bool, seed: int = 14) -> str:
    """About `n_chars` of Faker's sentences (seeded), in paragraphs or as one."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        sentences = " ".join(
            f"{fake.name()} of {fake.company()} met {fake.first_name()} in {fake.city()}. {fake.sentence(12)}"
            for _ in range(rng.randint(2, 4))
        )
        parts.append(sentences)
        size += len(sentences) + 2
    text = ("\n\n" if paragraphs else " ").join(parts)
    return text[: n_chars - 1].rstrip() + "."


def setup_projects(n_chars: int) -> dict[str, tuple[int, int, int]]:
    """A lead and a marker, and per document a spans project with that one item:
    {name: (project id, item id, characters)}."""
    from django.contrib.auth import get_user_model

    from annotate.items import item_create_bulk
    from annotate.projects import membership_add, project_create

    lead = get_user_model().objects.create_user("lead", password=PASSWORD)
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    projects = {}
    for name, paragraphs in (("paragraphs", True), ("one paragraph", False)):
        text = document_text(n_chars, paragraphs=paragraphs)
        project = project_create(
            name=f"Spans: {name}", task_type="text_spans", created_by=lead, labels=LABELS
        )
        membership_add(project=project, user=user, role="annotator")
        item_create_bulk(project=project, rows=[{"external_id": name, "text": text}])
        projects[name] = (project.pk, project.items.get().pk, len(text))
    return projects


def mark_spans(page, base: str, project_id: int, *, spans: int, step: int) -> dict:
    page.goto(f"{base}/projects/{project_id}/label/")
    page.wait_for_selector("[data-labeling][data-state=ready]")
    page.wait_for_selector("[data-item-text][data-span-count]")
    page.evaluate(OBSERVER)
    started = time.perf_counter()
    for i in range(spans):
        for _ in range(step if i else 1):
            page.keyboard.press("ArrowRight")
        if i % 2:
            page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press(str(i % len(LABELS) + 1))
        page.wait_for_function(f"window.__marks.length >= {i + 1}")
    elapsed = time.perf_counter() - started
    marks = page.evaluate("window.__marks")
    status = page.inner_text("[data-status]")
    page.keyboard.press("Enter")
    page.wait_for_function("Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= 1")
    return {
        "spans": len(marks),
        "seconds": round(elapsed, 1),
        "mark_ms_p50": round(percentile(marks, 50), 1),
        "mark_ms_p95": round(percentile(marks, 95), 1),
        "mark_ms_max": round(max(marks), 1),
        "last_status": status,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=50_000, help="document length")
    parser.add_argument("--spans", type=int, default=50, help="spans to mark per document")
    parser.add_argument("--step", type=int, default=150, help="tokens the caret moves between spans")
    parser.add_argument("--json", help="write the figures and the machine here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary var folder")
    args = parser.parse_args()
    machine = describe()

    with var_dir_temporary("bench-spans-", keep=args.keep) as var_dir:
        env = environment_apply(
            studio_environment(
                f"sqlite:///{var_dir / 'bench.sqlite3'}", var_dir,
                DJANGO_DEBUG="0", DJANGO_SECURE_SSL_REDIRECT="0", DJANGO_SECURE_COOKIES="0",
                DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            )
        )  # fmt: skip
        for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True)
        django_setup()
        projects = setup_projects(args.chars)
        server = Gunicorn(workers=1, threads=4, env=env, log_path=var_dir / "gunicorn.log")
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        results = {}
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.goto(f"{base}/accounts/login/")
                page.fill("input[name=username]", USERNAME)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                for name, (project_id, _, _) in projects.items():
                    log(f"marking {args.spans} spans: {name}")
                    results[name] = mark_spans(page, base, project_id, spans=args.spans, step=args.step)
                browser.close()
        finally:
            server.stop()

        from annotate.models import Annotation

        for name, (_, item_id, _) in projects.items():
            stored = Annotation.objects.filter(item_id=item_id).values_list("value", flat=True).first()
            results[name]["stored_spans"] = len(stored["spans"]) if stored else 0

    print(f"Marking spans by keyboard in chromium: {args.spans} per document, caret step {args.step} tokens")
    print(f"machine: {machine['nproc']} cores, {machine['cpu_model']}, load {machine['loadavg_start']}")
    print(
        "| document | chars | spans marked / stored | wall s | hotkey → mark painted p50 / p95 / max (ms)",
        end="",
    )
    print(" | target |")
    print("|---|---|---|---|---|---|")
    ok = True
    for name, r in results.items():
        chars = projects[name][2]
        met = r["mark_ms_p95"] <= TARGET_MARK_MS and r["stored_spans"] == args.spans == r["spans"]
        ok &= met
        print(
            f"| {name} | {chars:,} | {r['spans']} / {r['stored_spans']} | {r['seconds']} | "
            f"{r['mark_ms_p50']} / {r['mark_ms_p95']} / {r['mark_ms_max']} | "
            f"p95 ≤ {TARGET_MARK_MS} ms: {'met' if met else 'NOT MET'} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=2)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
