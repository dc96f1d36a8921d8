"""The load generators, each with its load model in its docstring:

- `paced_cycles`: one annotator over HTTP, open loop (a cycle starts every 1/rate s whatever the
  previous one took); next and submit timed apart;
- `saturation`: N annotators over HTTP, closed loop with no think time (submit-and-next as soon as
  the previous answer arrives), counted after a warm-up;
- `paced_in_process`: one annotator calling the queue's services in this process, a fixed pause
  between round trips.
"""

import json
import math
import threading
import time
from collections.abc import Callable

from bench.harness.api import Client, HttpError
from bench.harness.dataset import REVIEW_LABELS
from bench.harness.stats import latency_summary


def value_for(n: int) -> dict:
    """The label of an annotator's n-th answer: fresh and rotten in turn."""
    return {"choices": [REVIEW_LABELS[n % 2]]}


def paced_cycles(*, port: int, token: str, project_id: int, rate: float, seconds: float) -> dict:
    """One annotator, open loop: a cycle starts every 1/rate s (POST next, then POST annotations).

    Each request is timed on its own. A cycle whose start is already due when the previous one
    ends starts at once (counted in `behind_schedule`): the schedule is fixed, not the gaps.
    """
    client = Client(port, token=token)
    next_s, submit_s, errors = [], [], []
    interval, n, behind, empty = 1 / rate, 0, 0, False
    start = time.perf_counter()
    while n * interval < seconds:
        due = start + n * interval
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -interval:
            behind += 1
        status, payload, took = client.request("POST", f"/api/projects/{project_id}/next/", {"exclude": []})
        n += 1
        if status == 204:
            empty = True
            break
        if status != 200:
            errors.append(f"next -> {status}: {payload[:200]!r}")
            continue
        next_s.append(took)
        item_id = json.loads(payload)["item"]["id"]
        body = {"item": item_id, "value": value_for(n), "active_ms": 1200}
        status, payload, took = client.request("POST", f"/api/projects/{project_id}/annotations/", body)
        if status != 201:
            errors.append(f"annotations -> {status}: {payload[:200]!r}")
            continue
        submit_s.append(took)
    elapsed = time.perf_counter() - start
    client.close()
    if errors and len(errors) > max(3, n // 100):
        raise HttpError(f"{len(errors)} of {n} cycles failed, e.g. {errors[0]}")
    return {
        "cycles": n,
        "seconds": round(elapsed, 2),
        "rate_asked": rate,
        "rate_achieved": round(len(submit_s) / elapsed, 2),
        "behind_schedule": behind,
        "queue_emptied": empty,
        "errors": errors[:5],
        "next": latency_summary(next_s),
        "submit": latency_summary(submit_s),
    }


def saturation(*, port: int, tokens: list[str], project_id: int, seconds: float, warmup: float = 1.0) -> dict:
    """Closed loop, no think time: each annotator (a thread with its own connection and token)
    gets a first item, then POSTs submit-and-next as soon as the previous answer arrives.

    The first `warmup` seconds are not counted (every worker has served a request by then);
    then `seconds` are: cycles that end inside that window, and their latencies.
    """
    barrier = threading.Barrier(len(tokens) + 1)
    results: list[dict] = [{} for _ in tokens]
    stop_at = [0.0]

    def annotator(index: int, token: str) -> None:
        client = Client(port, token=token)
        latencies, errors, empty = [], [], False
        try:
            item = next_item(client)
        except Exception as exc:  # reported, never left hanging at the barrier
            errors.append(repr(exc))
            item = None
        barrier.wait()
        try:
            empty = loop(client, item, latencies, errors)
        except Exception as exc:  # one annotator's failure is reported, not lost with its thread
            errors.append(repr(exc))
        finally:
            client.close()
        results[index] = {
            "cycles": len(latencies),
            "latencies": latencies,
            "errors": errors,
            "queue_emptied": empty,
        }

    def loop(client: Client, item: dict | None, latencies: list, errors: list) -> bool:
        """Cycles until the deadline; True if the queue ran dry."""
        path = f"/api/projects/{project_id}/submit-and-next/"
        while item is not None and time.perf_counter() < stop_at[0]:
            body = {"item": item["id"], "value": value_for(len(latencies)), "active_ms": 900, "exclude": []}
            status, payload, took = client.request("POST", path, body)
            if status != 201:
                errors.append(f"{status}: {payload[:200]!r}")
                if len(errors) > 20:
                    break
                item = next_item(client)
                continue
            latencies.append((time.perf_counter(), took))
            answer = json.loads(payload)
            item = (answer.get("next") or {}).get("item")
            if item is None:
                if "detail" not in answer:
                    return True
                item = next_item(client)  # the lease limit stopped it: ask on its own
        return False

    def next_item(client: Client) -> dict | None:
        answer = client.json("POST", f"/api/projects/{project_id}/next/", {"exclude": []}, expect=(200, 204))
        return answer.get("item")

    threads = [threading.Thread(target=annotator, args=(i, t), daemon=True) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    stop_at[0] = math.inf
    barrier.wait()
    start = time.perf_counter() + warmup
    stop_at[0] = start + seconds
    for thread in threads:
        thread.join()
    elapsed = seconds
    for r in results:
        r["latencies"] = [took for ended, took in r["latencies"] if start <= ended <= stop_at[0]]
        r["cycles"] = len(r["latencies"])
    cycles = sum(r["cycles"] for r in results)
    every = [took for r in results for took in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    if errors and len(errors) > max(3, cycles // 100):
        raise HttpError(f"{len(errors)} errors in {cycles} cycles, e.g. {errors[0]}")
    return {
        "annotators": len(tokens),
        "seconds": round(elapsed, 2),
        "cycles": cycles,
        "cycles_per_s": round(cycles / elapsed, 1),
        "per_annotator_cycles": [r["cycles"] for r in results],
        "submit_and_next": latency_summary(every),
        "annotator1_submit_and_next": latency_summary(results[0]["latencies"]),
        "queue_emptied": any(r["queue_emptied"] for r in results),
        "errors": errors[:5],
    }


def paced_in_process(
    project, annotator, *, until: Callable[[], bool], pause: float
) -> list[tuple[float, float, float]]:
    """One annotator in this process, through the queue's services: round trips (assignment_next,
    then assignment_release_all) with `pause` s between them until `until()`: (wall clock at
    start, next s, trip s) of each."""
    from annotate.queue import assignment_next, assignment_release_all

    samples = []
    while not until():
        wall = time.time()
        started = time.perf_counter()
        lease = assignment_next(project=project, annotator=annotator)
        got = time.perf_counter()
        assignment_release_all(project=project, annotator=annotator)
        ended = time.perf_counter()
        if lease is None:
            raise RuntimeError("the queue is empty")
        samples.append((wall, got - started, ended - started))
        time.sleep(pause)
    return samples
