"""Summaries of an evaluation: the metrics JSON and the markdown table (REFERENCE §1.8 column layout).

A metrics JSON is :func:`longrm.eval.metrics.compute_metrics`'s result plus ``name`` (the label used in
tables and plots), ``model`` and ``mode``.  :func:`markdown_table` renders one row per metrics JSON, so the
same function makes a single run's ``results.md`` and a comparison of several models or checkpoints.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..config import atomic_write_text
from .metrics import compute_metrics, format_interval

__all__ = ["summarize", "write_metrics", "load_metrics", "markdown_table", "results_markdown"]


def summarize(rows: Sequence[dict], *, name: str, model: str = "", mode: str = "", extra: dict | None = None) -> dict:
    return {"name": name, "model": model, "mode": mode, **compute_metrics(rows), **(extra or {})}


def write_metrics(metrics: dict, path: str | Path) -> Path:
    atomic_write_text(path, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return Path(path)


def load_metrics(path: str | Path) -> dict:
    """A metrics JSON, given its path or the run folder holding ``metrics.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no metrics JSON (run `longrm eval` first)")
    m = json.loads(p.read_text())
    if "columns" not in m:
        raise ValueError(f"{p}: not a LongRM eval metrics JSON (no 'columns')")
    m.setdefault("name", p.parent.name)
    return m


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def markdown_table(metrics: Sequence[dict], *, drop_empty: bool = True) -> str:
    """One row per run; columns in the benchmark's order; values in percent; parse-failure rate last.

    ``drop_empty`` leaves out columns no run has samples for (e.g. a task absent from a small set).
    """
    cols: list[str] = []
    for m in metrics:
        for c in m["columns"]:
            if c not in cols:
                cols.append(c)
    if drop_empty:
        cols = [c for c in cols if any(m["columns"].get(c, {}).get("n") for m in metrics)] or cols
    head = ["Model"] + cols + ["N", "Parse fail %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for m in metrics:
        vals = [_fmt(m["columns"].get(c, {}).get("value")) for c in cols]
        lines.append("| " + " | ".join([str(m.get("name", "?"))] + vals + [str(m.get("n_samples", "")),
                                                                            _fmt(m.get("parse_failure_rate"))]) + " |")
    return "\n".join(lines) + "\n"


def results_markdown(metrics: Sequence[dict], title: str = "Long-RewardBench results") -> str:
    """The table plus a short legend."""
    legend = ("Task columns, Same./Diff. and the length buckets are pairwise accuracy; Rank2–4 are best-of-N "
              "rank match ratios; AVG. averages every sample. Values in %; – = no samples.")
    cis = [f"{m.get('name', '?')}: {format_interval(ci)}% of {m['columns']['PairWise Avg.']['n']} pairs"
           for m in metrics if (ci := m["columns"].get("PairWise Avg.", {}).get("ci95"))]
    if cis:
        legend += " 95% Wilson interval of PairWise Avg.: " + "; ".join(cis) + "."
    return f"# {title}\n\n{markdown_table(metrics)}\n{legend}\n"
