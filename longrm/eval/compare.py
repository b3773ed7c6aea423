"""Compare several evaluations (models or checkpoints) in one table and one figure.

``python -m longrm.eval.compare RUN_OR_METRICS.json ... --out DIR [--labels a b ...]`` reads each metrics
JSON (or run folder), writes ``DIR/comparison.md`` and ``DIR/comparison.png``.  ``longrm eval`` does the same
for its own run plus ``output.compare_with``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..config import atomic_write_text
from .plot import plot_accuracy_vs_length
from .report import load_metrics, results_markdown

__all__ = ["compare"]


def compare(sources: Sequence[str | Path | dict], out_dir: str | Path, labels: Sequence[str] | None = None,
            stem: str = "comparison") -> tuple[Path, Path]:
    """Table + plot of ``sources`` (metrics dicts, JSON paths or run folders); returns (md path, png path)."""
    ms = [dict(s) if isinstance(s, dict) else load_metrics(s) for s in sources]
    if labels:
        if len(labels) != len(ms):
            raise ValueError(f"{len(labels)} labels for {len(ms)} runs")
        for m, lab in zip(ms, labels):
            m["name"] = lab
    out_dir = Path(out_dir)
    md = out_dir / f"{stem}.md"
    atomic_write_text(md, results_markdown(ms, title="Long-RewardBench comparison"))
    png = plot_accuracy_vs_length(ms, out_dir / f"{stem}.png")
    return md, png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare Long-RewardBench evaluations in one table and plot.")
    ap.add_argument("runs", nargs="+", help="metrics JSON files or `longrm eval` output folders")
    ap.add_argument("--out", required=True, help="folder for comparison.md and comparison.png")
    ap.add_argument("--labels", nargs="*", help="names for the runs, in order (default: their 'name')")
    a = ap.parse_args(argv)
    md, png = compare(a.runs, a.out, a.labels)
    print(md.read_text())
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
