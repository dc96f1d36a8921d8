"""Where the CPU went during a phase, in cores: the one meter of every benchmark, and what a cycle
cost in CPU (the capacity the studio would have with every core to itself).

The machine is shared: the meter splits the busy time of the whole machine (/proc/stat) into the
parts a benchmark names (this process, its waited-for children, groups of processes such as the
gunicorn workers or PostgreSQL) and "other", everything else running on it (other people's work).
"""

import os
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bench.harness.machine import cpu_count, loadavg


class Proc(NamedTuple):
    comm: str
    ppid: int
    ticks: int  # utime + stime, in clock ticks


def processes() -> dict[int, Proc]:
    """Every process we can read, by pid."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.name)] = Proc(comm, int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def machine_busy_ticks() -> int:
    """Clock ticks the whole machine has been busy: all of /proc/stat's first line but idle and iowait."""
    stat = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(stat) - stat[3] - stat[4]


def postgres_all(procs: dict[int, Proc]) -> set[int]:
    """Every PostgreSQL process on the machine, whatever its database."""
    return {pid for pid, proc in procs.items() if proc.comm.startswith("postgres")}


def postgres_ours(procs: dict[int, Proc]) -> set[int]:
    """The backends connected to the bench's database (Django's connection) and the server's own
    processes (checkpointer, WAL writer, …); backends of other databases are left out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL"
        )
        pids = {row[0] for row in cursor.fetchall()}
    return {pid for pid in pids if pid in procs and procs[pid].comm.startswith("postgres")}


@dataclass(frozen=True)
class Part:
    """One share of the CPU: `key` in `cores`, `label` in the text.

    `source` is "self" (this process, getrusage), "children" (its terminated, waited-for
    children, getrusage) or a function from the process table to the pids of a group.
    """

    key: str
    label: str
    source: str | Callable[[dict[int, Proc]], Iterable[int]]
    hide_zero: bool = False  # left out of the text when it used nothing


class CpuMeter:
    """CPU used during a `with` block, in cores: each part, the machine, and "other".

    A group's processes are looked up at the start and the end (and every `sample_every` s when
    given): a process counts its CPU time at its last sighting less its time at the start (all of
    it for one that started during the phase). A process that ends between two sightings loses
    what it used after the last one: it falls into "other". Sampling every 0.5 s keeps most of a
    closed connection's backend.
    """

    def __init__(self, *parts: Part, sample_every: float | None = None, show_loadavg: bool = False):
        self.parts = parts
        self.groups = [part for part in parts if callable(part.source)]
        self.sample_every = sample_every
        self.show_loadavg = show_loadavg
        self.tick = os.sysconf("SC_CLK_TCK")
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def _counters(self) -> dict:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.perf_counter(),
            "self": own.ru_utime + own.ru_stime,
            "children": children.ru_utime + children.ru_stime,
            "machine": machine_busy_ticks() / self.tick,
        }

    def _sight(self, procs: dict[int, Proc] | None = None) -> None:
        """Look up every group's processes and note the CPU time of each one seen so far."""
        procs = processes() if procs is None else procs
        for part in self.groups:
            for pid in part.source(procs):
                if pid in self.first[part.key] or pid not in procs:
                    continue
                before = self.procs_start.get(pid)
                same = before is not None and before.comm == procs[pid].comm
                self.first[part.key][pid] = (procs[pid].comm, before.ticks if same else 0)
                self.last[part.key][pid] = procs[pid].ticks
        for part in self.groups:
            for pid, (comm, _ticks) in self.first[part.key].items():
                if pid in procs and procs[pid].comm == comm:
                    self.last[part.key][pid] = procs[pid].ticks

    def _sampler(self) -> None:
        while not self.stopped.wait(self.sample_every):
            self._sight()

    def __enter__(self) -> "CpuMeter":
        self.loadavg_start = loadavg()
        self.start = self._counters()
        self.procs_start = processes()
        self.first: dict[str, dict[int, tuple[str, int]]] = {part.key: {} for part in self.groups}
        self.last: dict[str, dict[int, int]] = {part.key: {} for part in self.groups}
        self._sight(self.procs_start)
        if self.sample_every:
            self.thread = threading.Thread(target=self._sampler, name="cpu-meter", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        end = self._counters()
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        self._sight()
        wall = end["wall"] - self.start["wall"]
        used = {}
        for part in self.parts:
            if callable(part.source):
                last, first = self.last[part.key], self.first[part.key]
                ticks = sum(last[pid] - start for pid, (_comm, start) in first.items())
                used[part.key] = ticks / self.tick / wall
            else:
                used[part.key] = (end[part.source] - self.start[part.source]) / wall
        used["machine"] = (end["machine"] - self.start["machine"]) / wall
        parts = sum(used[part.key] for part in self.parts)
        used["other"] = max(0.0, used["machine"] - parts)
        self.cores = {key: round(value, 2) for key, value in used.items()}
        self.loadavg_end = loadavg()

    def text(self) -> str:
        c = self.cores
        shown = [f"{p.label} {c[p.key]}" for p in self.parts if not (p.hide_zero and not c[p.key])]
        load = f"; load average {self.loadavg_start} → {self.loadavg_end}" if self.show_loadavg else ""
        return (
            f"CPU in cores of {cpu_count()}: {', '.join(shown)}, other processes {c['other']} "
            f"(machine busy {c['machine']}{load})"
        )

    def as_dict(self) -> dict:
        return {**self.cores, "loadavg_start": self.loadavg_start, "loadavg_end": self.loadavg_end}


def http_cpu_meter(gunicorn_pids: Callable[[dict[int, Proc]], Iterable[int]]) -> CpuMeter:
    """The HTTP benchmark's CPU meter: this client, the gunicorn processes (master and workers),
    PostgreSQL (the bench database's backends and the server's own processes), other processes."""
    return CpuMeter(
        Part("client", "client", "self"),
        Part("gunicorn", "gunicorn", gunicorn_pids),
        Part("postgres", "PostgreSQL", postgres_ours),
    )


def run_cpu_meter() -> CpuMeter:
    """The training benchmarks' CPU meter: this process, the run subprocess (once it has ended and
    been waited for), every PostgreSQL process (sampled every 0.5 s, so a closed connection's
    backend still counts), other processes; with the load average."""
    return CpuMeter(
        Part("bench", "this process", "self"),
        Part("subprocess", "run subprocess", "children", hide_zero=True),
        Part("postgres", "PostgreSQL", postgres_all),
        sample_every=0.5,
        show_loadavg=True,
    )


def capacity(cycles_per_s: float, cores: dict) -> dict:
    """What the machine could do for the studio alone: CPU per cycle of client + gunicorn +
    PostgreSQL, and the cycles/s all cores would give at that cost (an upper bound: it assumes
    the work spreads over every core). On a shared machine this separates the studio's cost
    from the CPU other people's work took."""
    used = cores["client"] + cores["gunicorn"] + cores["postgres"]
    if not cycles_per_s or not used:
        return {"cpu_ms_per_cycle": None, "projected_cycles_per_s": None}
    per_cycle = used / cycles_per_s
    return {
        "cpu_ms_per_cycle": round(per_cycle * 1000, 1),
        "gunicorn_cpu_ms_per_cycle": round(cores["gunicorn"] / cycles_per_s * 1000, 1),
        "postgres_cpu_ms_per_cycle": round(cores["postgres"] / cycles_per_s * 1000, 1),
        "projected_cycles_per_s": round(cpu_count() / per_cycle),
    }
