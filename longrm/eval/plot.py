"""Accuracy against context length, one line per model or checkpoint (matplotlib, Agg backend).

The y axis is the benchmark's per-length pairwise accuracy (REFERENCE §1.8: ``4k`` … ``128k``); a dashed line
marks the 50 % a coin flip gets.  ``which="all"`` plots the all-sample average per length instead (pairwise
and best-of-N together; no chance line, since chance differs by N).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

from .samples import LENGTHS

__all__ = ["plot_accuracy_vs_length"]


def _series(m: dict, which: str) -> dict[str, float | None]:
    if which == "all":
        return {k: v.get("value") for k, v in m.get("by_length_all", {}).items()}
    return {k: m["columns"].get(k, {}).get("value") for k in m["groups"]["length"]}


def plot_accuracy_vs_length(metrics: Sequence[dict], out: str | Path, *, which: Literal["pairwise", "all"] = "pairwise",
                            title: str | None = None) -> Path:
    """Write a PNG comparing ``metrics`` (metrics JSONs) across length buckets; returns its path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    series = [(_series(m, which), str(m.get("name", f"run {i}"))) for i, m in enumerate(metrics)]
    labels = [L for L in LENGTHS if any(s.get(L) is not None for s, _ in series)]
    labels += sorted({L for s, _ in series for L, v in s.items() if v is not None and L not in LENGTHS})
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    markers = "osD^vP*X"
    for i, (s, name) in enumerate(series):
        xs = [j for j, L in enumerate(labels) if s.get(L) is not None]
        ys = [100 * s[labels[j]] for j in xs]
        ax.plot(xs, ys, marker=markers[i % len(markers)], linewidth=1.8, markersize=6, label=name)
    if which == "pairwise":
        ax.axhline(50, color="grey", linestyle="--", linewidth=1, label="random (50%)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.3, max(len(labels) - 0.7, 0.3))
    ax.set_ylim(-3, 103)
    ax.set_xlabel("context length")
    ax.set_ylabel("pairwise accuracy (%)" if which == "pairwise" else "rank match ratio, all samples (%)")
    ax.set_title(title or "Long-RewardBench: accuracy vs context length")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
