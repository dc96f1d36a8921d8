"""The parts every benchmark in bench/ is built from; each bench_*.py composes them.

- machine.py: what a figure was taken on (cores, CPU model, speed and jitter, load, versions);
- cpu.py: where the CPU went during a phase (one meter for every benchmark) and the CPU per cycle;
- memory.py: a process's resident set and its peak;
- stats.py: the log and the latency analysis (nearest-rank percentiles);
- studio.py: the studio under test: its environment, its temporary var folder, Django set up;
- database.py: the bench's own PostgreSQL database: made anew, analyzed, checked, explained;
- servers.py: the server processes (gunicorn, the Celery worker), started and stopped;
- api.py: one user's HTTP connection; users, tokens, projects and members through the REST API;
  the HTTP import and the streamed export;
- load.py: the load generators: open-loop paced, closed-loop saturation, in-process paced;
- dataset.py: the data: the reviews CSV, bulk labels, the text and image projects;
- digits.py: augmented digits (NumPy and Pillow only: no Django needed);
- editors_data.py: the editors benchmark's photographs with boxes and texts with spans;
- item_browser_data.py: the item browser benchmark's project: texts, annotations, final labels,
  gold, suspicious labels and predictions;
- browser.py: chromium launched alike by every browser benchmark, a logged-in context, and the
  page script timing a key press to the next item painted;
- runs.py: a training run as the studio runs it, timed by phase, memory and CPU;
- report.py: the report tables.

Nothing here imports Django, torch or psycopg at module level: each is imported where it is used,
so that `bench_training_fit --image-only` runs without Django.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
