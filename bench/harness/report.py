"""The report tables: each figure beside its target and whether it met it.

- `Figure` and `figures_markdown`: the HTTP benchmark's table (figure, load model, ours, target,
  Label Studio's figure, met), one Markdown row per figure;
- `others_note`, `pace_note`, `saturation_note`: the notes in its "ours" column;
- `rows_aligned`: the training run benchmark's table, (figure, value, target, met) rows in aligned
  columns.

The notes say, beside an HTTP figure, under what load it was taken: the CPU other people's
work used, how well the paced annotator kept its schedule and how steady the machine was just
before, the CPU per cycle. A figure's `met` is True, False, or None when it has no target.
"""

import statistics
from dataclasses import dataclass, field

from bench.harness.machine import cpu_count


@dataclass
class Figure:
    key: str
    figure: str
    load_model: str
    ours: str
    target: str
    label_studio: str
    met: bool | None  # None: not measured, or no target
    details: dict = field(default_factory=dict)


def figures_markdown(figures: list[Figure]) -> list[str]:
    """The table's lines: its header, then a row per figure."""
    lines = [
        "| figure | load model | ours | target | Label Studio 1.23.2 | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        met = {True: "yes", False: "NO", None: "–"}[f.met]
        lines.append(f"| {f.figure} | {f.load_model} | {f.ours} | {f.target} | {f.label_studio} | {met} |")
    return lines


def others_note(cores: dict) -> str:
    """The cores other people's work took during the figure (a CpuMeter's "other")."""
    return f"others used {cores['other']} of {cpu_count()} cores"


def pace_note(paced: dict) -> str:
    """How a paced run kept its schedule, the neighbours' CPU, and the machine's jitter just before."""
    late = ""
    if paced["behind_schedule"]:
        late = (
            f", {paced['behind_schedule']} of {paced['cycles']} cycles started over "
            f"{1000 / paced['rate_asked']:.0f} ms late"
        )
    jitter = paced.get("machine_jitter")
    steady = ""
    if jitter:
        steady = (
            f"; the machine just before: the same {jitter['p50_ms']} ms of Python work took up to"
            f" {jitter['p99_ms']} ms at p99 (bench/harness/machine.py cpu_jitter)"
        )
    return f"{paced['rate_achieved']} cycles/s achieved{late}; {others_note(paced['cpu_cores'])}{steady}"


def saturation_note(sat: dict) -> str:
    """The CPU per cycle, its projection on every core, the overlap check and the neighbours' CPU."""
    return (
        f"{sat['cpu_ms_per_cycle']} ms CPU per cycle → {sat['projected_cycles_per_s']}/s "
        f"if the stack had all {cpu_count()} cores; overlap "
        + ("OK" if sat["overlap_check"]["ok"] else "VIOLATED")
        + f"; {others_note(sat['cpu_cores'])}"
    )


def rows_aligned(rows: list[tuple[str, str, str, bool | None]]) -> list[str]:
    """(figure, value, target, met) rows under a header, in columns as wide as their longest cell."""
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [
        f"{'figure':<{width}}  {'value':<{value_width}}  {'target':<10}  met",
        "-" * (width + value_width + 20),
    ]
    for figure, value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        lines.append(f"{figure:<{width}}  {value:<{value_width}}  {target:<10}  {mark}")
    return lines


def all_met(mets) -> bool:
    """True unless some figure missed its target (figures without one do not count)."""
    return all(met is not False for met in mets)


def percent_mean_sd(values: list[float]) -> str:
    """Proportions as "mean ± sd" in percent (sd 0 for one value), for the seeds of a table row."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):6.2f} ± {100 * spread:4.2f}"
