"""The evaluation loop: resumable, sharded over data-parallel ranks, one flushed line per finished sample.

Layout of an output folder::

    run.json                 what produced the predictions (model, mode, seed, ...); a resume must match it
    shards/rank{R}.jsonl     per-sample rows appended (and flushed) by rank R as samples finish
    predictions.jsonl        all rows merged by rank 0, in dataset order (written atomically)

Resuming: the ids found in any ``shards/*.jsonl`` are done and skipped, whatever the world size was, except
rows the backend failed to answer (``backend_error``); a line cut short by a kill is ignored (and the file is
mended before appending).  Data parallelism: under
``torchrun`` every rank takes every ``world``-th sample (skipping done ones), writes its own shard, meets the others at
a barrier, and rank 0 merges.  Without ``torch.distributed`` initialised it is a single process.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..config import atomic_write_text
from .backends import BACKEND_ERROR
from .protocol import Mode, Plan, decide, decide_scores, plan
from .samples import EvalSample

__all__ = ["RunPaths", "done_ids", "read_rows", "evaluate", "merge_shards", "check_signature", "dist_info"]


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def shard(self, rank: int) -> Path:
        return self.shards / f"rank{rank}.jsonl"

    @property
    def signature(self) -> Path:
        return self.root / "run.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def table(self) -> Path:
        return self.root / "results.md"

    @property
    def plot(self) -> Path:
        return self.root / "accuracy_vs_length.png"


def dist_info() -> tuple[int, int]:
    """``(rank, world)`` of an initialised ``torch.distributed`` group, else ``(0, 1)``."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def read_rows(path: Path) -> Iterable[dict]:
    """Rows of a jsonl file; a line that does not parse (cut short by a kill) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "id" in row:
                yield row


def done_ids(paths: RunPaths) -> set[str]:
    """Ids already written by any rank of any earlier run into ``paths`` — except rows the backend could not
    answer (``backend_error``: a server that timed out), which a resumed run asks again."""
    ids: set[str] = set()
    if paths.shards.is_dir():
        for f in sorted(paths.shards.glob("rank*.jsonl")):
            ids.update(str(r["id"]) for r in read_rows(f) if not r.get("backend_error"))
    return ids


def check_signature(paths: RunPaths, signature: dict, overwrite: bool = False) -> None:
    """Record what produces this folder; refuse to resume into a folder made by something else.

    ``overwrite`` clears earlier shards instead (rank 0 only should call this with ``overwrite``).
    """
    if overwrite and paths.shards.is_dir():
        for f in paths.shards.glob("rank*.jsonl"):
            f.unlink()
    if paths.signature.exists() and done_ids(paths):
        old = json.loads(paths.signature.read_text())
        diff = {k: (old.get(k), v) for k, v in signature.items() if old.get(k) != v}
        if diff:
            lines = "\n  ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"{paths.root} holds predictions made with different settings:\n  {lines}\n"
                             "use another output dir, or output.overwrite=true to start again")
    atomic_write_text(paths.signature, json.dumps(signature, indent=2, sort_keys=True) + "\n")


class _Appender:
    """Append one JSON line per row to a shard, flushing each so a kill loses at most the current sample."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
            if needs_newline:
                with path.open("a", encoding="utf-8") as f:
                    f.write("\n")
        self.f = path.open("a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _progress(total: int, rank: int, enabled: bool):
    from tqdm.auto import tqdm

    import sys

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc="eval", unit="sample", disable=not enabled or rank != 0,
                dynamic_ncols=True, mininterval=0.5 if tty else 30.0, smoothing=0.1)


def evaluate(samples: Sequence[EvalSample], mode: Mode, paths: RunPaths, *,
             generate: Callable[[list[list[dict]]], list[str]] | None = None,
             score: Callable[[list[list[dict]]], list[float]] | None = None,
             seed: int = 42, requests_per_step: int = 8, progress: bool = True,
             rank: int | None = None, world: int | None = None) -> int:
    """Judge this rank's share of the not-yet-done ``samples``; returns how many samples it judged.

    ``generate`` answers the generative and pointwise modes, ``score`` the discriminative one.  Whole samples
    are grouped until they hold ``requests_per_step`` requests, sent in one call (the backend batches), and
    each finished sample is appended to this rank's shard at once.
    """
    if rank is None or world is None:
        rank, world = dist_info()
    if mode == "discriminative" and score is None or mode != "discriminative" and generate is None:
        raise ValueError(f"mode {mode!r} needs a {'score' if mode == 'discriminative' else 'generate'} backend")
    # Rank r owns every world-th sample of the full list — not of the remaining ones, which a rank that
    # started writing already would change under another rank's feet.
    done = done_ids(paths)
    mine = [s for s in samples[rank::world] if s.id not in done]
    out = _Appender(paths.shard(rank))
    bar = _progress(len(mine), rank, progress)   # rank 0's pace stands for all ranks' (slices are balanced)
    finished = 0
    try:
        i = 0
        nxt = plan(mine[0], mode, seed) if mine else None
        while nxt is not None:
            group: list[Plan] = []
            n_req = 0
            while nxt is not None and (not group or n_req + len(nxt.requests) <= requests_per_step):
                group.append(nxt)
                n_req += len(nxt.requests)
                i += 1
                nxt = plan(mine[i], mode, seed) if i < len(mine) else None
            convs = [c for p in group for c in p.requests]
            answers = score(convs) if mode == "discriminative" else generate(convs)
            k = 0
            for p in group:
                got = answers[k:k + len(p.requests)]
                k += len(p.requests)
                if mode == "discriminative":
                    row = decide_scores(p, got)
                else:
                    row = decide(p, got)
                    if any(isinstance(t, str) and t.startswith(BACKEND_ERROR) for t in got):
                        row["backend_error"] = True
                out.write(row)
                finished += 1
            bar.update(len(group))
    finally:
        out.close()
        bar.close()
    _barrier()
    return finished


def merge_shards(paths: RunPaths, samples: Sequence[EvalSample]) -> list[dict]:
    """All ranks' rows for ``samples``, in dataset order; written to predictions.jsonl.

    Per id the last row wins, but an answered row always beats a ``backend_error`` one.

    Rows for ids not in ``samples`` (e.g. filtered out this time) stay in the shards but are left out.
    """
    by_id: dict[str, dict] = {}
    if paths.shards.is_dir():
        for f in sorted(paths.shards.glob("rank*.jsonl")):
            for r in read_rows(f):
                old = by_id.get(str(r["id"]))
                if old is None or old.get("backend_error") or not r.get("backend_error"):
                    by_id[str(r["id"])] = r
    rows = [by_id[s.id] for s in samples if s.id in by_id]
    atomic_write_text(paths.predictions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows
