"""Reward quality before and after training: one table and one JSON object from several eval runs.

Each entry names a judge and the eval runs (metrics JSON or run folder, :func:`longrm.eval.report.load_metrics`)
of its stages in order, e.g. ``base → sft → logo`` on the same held-out rows.  The table shows, per stage,
pairwise accuracy overall (with its 95% Wilson interval: held-out sets are small) and per length bucket, the
best-of-N rank match ratio and the parse-failure rate; the JSON object carries the same numbers (fractions) for
scripts (``benchmarks/reward_quality.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .metrics import format_interval, wilson_interval
from .report import load_metrics
from .samples import LENGTHS

__all__ = ["stage_numbers", "quality_table", "quality_summary"]


def stage_numbers(metrics: dict) -> dict:
    """The headline numbers of one eval run (fractions; ``None`` where the run had no such samples)."""
    cols = metrics["columns"]
    pw = cols["PairWise Avg."]
    ci = pw.get("ci95") or wilson_interval(pw["value"], metrics["n_pairwise"])  # older runs lack the key
    return {"pairwise": pw["value"], "pairwise_ci95": list(ci) if ci else None, "n_pairwise": metrics["n_pairwise"],
            "best_of_n": cols["Rank Avg."]["value"], "n_best_of_n": metrics["n_best_of_n"],
            "by_length": {L: cols[L]["value"] for L in LENGTHS if cols.get(L, {}).get("n")},
            "parse_failure_rate": metrics["parse_failure_rate"], "mode": metrics.get("mode")}


def quality_summary(entries: Sequence[dict]) -> dict:
    """``entries``: ``[{"name": judge, "stages": {stage_label: metrics_path}}, …]`` → ``{judge: {stage: numbers}}``.

    A run that does not exist (yet) is reported as ``None``."""
    out: dict = {}
    for e in entries:
        out[e["name"]] = {}
        for label, path in e["stages"].items():
            p = Path(path)
            out[e["name"]][label] = stage_numbers(load_metrics(p)) if (p / "metrics.json").exists() or p.is_file() \
                else None
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def quality_table(summary: dict, title: str = "Reward quality on held-out rows") -> str:
    """Markdown: one row per (judge, stage)."""
    lengths = [L for L in LENGTHS if any(n and L in n["by_length"] for st in summary.values() for n in st.values())]
    head = ["judge", "stage", "pairwise acc %", "95% CI", *[f"{L} %" for L in lengths], "best-of-N rank %",
            "parse fail %", "N pairwise"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for judge, stages in summary.items():
        for label, n in stages.items():
            if n is None:
                lines.append(f"| {judge} | {label} | " + " | ".join(["not run"] + ["–"] * (len(head) - 3)) + " |")
                continue
            cells = [_pct(n["pairwise"]), format_interval(n.get("pairwise_ci95")),
                     *[_pct(n["by_length"].get(L)) for L in lengths], _pct(n["best_of_n"]),
                     _pct(n["parse_failure_rate"]), str(n["n_pairwise"])]
            lines.append(f"| {judge} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
