"""Checkpoints: a DeepSpeed checkpoint to resume from, and a ``save_pretrained`` folder to use.

Layout under ``train.output_dir``::

    checkpoints/latest            tag of the newest complete resume checkpoint (written last, atomically)
    checkpoints/step-00000040/    DeepSpeed: model, optimizer (ZeRO shards), lr scheduler, client state
                                  (data position), plus rng_rank{R}.pt (torch/numpy/python RNG of each rank)
    hf/step-00000040/             save_pretrained model + tokenizer + resolved_config.yaml
    final/                        the same for the end of training

Everything is written under a ``.tmp-…`` name and renamed when complete, so a kill -9 at any moment leaves
either the previous checkpoint or the new one, never half of one (left-over ``.tmp-…`` folders are removed at
the next start).  DeepSpeed does all model/optimizer I/O; we only add the RNG files and the renames.  The
output folder must be shared by all ranks (as usual for multi-node DeepSpeed checkpoints).
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..config import atomic_dir, atomic_write_text, save_resolved
from .dist import barrier, is_main

__all__ = ["CKPT", "HF", "tag_for", "latest_tag", "clean_partial", "save_resume", "load_resume", "save_hf",
           "rng_state", "set_rng_state"]

CKPT = "checkpoints"
HF = "hf"


def tag_for(step: int) -> str:
    return f"step-{step:08d}"


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def latest_tag(out_dir: str | os.PathLike) -> str | None:
    f = Path(out_dir) / CKPT / "latest"
    if not f.exists():
        return None
    tag = f.read_text().strip()
    return tag if (Path(out_dir) / CKPT / tag).is_dir() else None


def clean_partial(out_dir: str | os.PathLike) -> None:
    """Rank 0 removes ``.tmp-*`` leftovers of an interrupted save (call before anything is saved)."""
    if is_main():
        for sub in (CKPT, HF, "."):
            d = Path(out_dir) / sub
            if d.is_dir():
                for p in d.glob(".tmp-*"):
                    shutil.rmtree(p, ignore_errors=True)
    barrier()


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():  # CUDA only
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():  # CUDA only
        torch.cuda.set_rng_state(st["cuda"])


def _rotate(root: Path, keep: int, protect: set[str] = frozenset()) -> None:
    tags = sorted(p for p in root.glob("step-*") if p.is_dir())
    for p in tags[:-keep] if keep > 0 else []:
        if p.name not in protect:
            shutil.rmtree(p, ignore_errors=True)


def save_resume(engine, out_dir: str | os.PathLike, step: int, client_state: dict, keep: int) -> str:
    """All ranks: DeepSpeed checkpoint + per-rank RNG under a temp tag, then rank 0 renames and points ``latest``."""
    root = Path(out_dir) / CKPT
    tag = tag_for(step)
    tmp = f".tmp-{tag}"
    engine.save_checkpoint(str(root), tag=tmp, client_state=client_state, save_latest=False)
    torch.save(rng_state(), root / tmp / f"rng_rank{_rank()}.pt")
    barrier()
    if is_main():
        if (root / tag).exists():
            shutil.rmtree(root / tag)
        os.replace(root / tmp, root / tag)
        atomic_write_text(root / "latest", tag)
        _rotate(root, keep)
    barrier()
    return tag


def load_resume(engine, out_dir: str | os.PathLike) -> dict | None:
    """Load the newest complete checkpoint into ``engine``; returns its client state (None: fresh start)."""
    tag = latest_tag(out_dir)
    if tag is None:
        return None
    root = Path(out_dir) / CKPT
    path, client = engine.load_checkpoint(str(root), tag=tag)
    if path is None:
        raise RuntimeError(f"{root / tag}: DeepSpeed could not load this checkpoint")
    rng = root / tag / f"rng_rank{_rank()}.pt"
    if rng.exists():
        set_rng_state(torch.load(rng, weights_only=False))
    return client or {}


def save_hf(engine, tokenizer, cfg, dest: str | os.PathLike) -> Path | None:
    """All ranks: gather the weights (ZeRO-3) and let rank 0 write ``save_pretrained`` + tokenizer + config."""
    dest = Path(dest)
    module = engine.module
    state_dict = None
    if engine.zero_optimization_stage() == 3:
        state_dict = engine._zero3_consolidated_16bit_state_dict()  # collective
    if is_main():
        with atomic_dir(dest) as tmp:
            module.save_pretrained(str(tmp), state_dict=state_dict, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(str(tmp))
            if cfg is not None:
                save_resolved(cfg, tmp)
    barrier()
    return dest if is_main() else None
