"""Wiring shared by the training stages (sft, align, disrm): start-up, data, model preparation, summary."""
from __future__ import annotations

import random
import sys

import numpy as np
import torch

from ..data.prepare import Collator, load_records, tokenize_preference, tokenize_sft
from .dist import is_main, setup_distributed
from .kernels import apply_liger

__all__ = ["start", "datasets", "prepare", "collator", "report", "uses_bf16"]


def start(cfg):
    """Process group + ParallelContext, seeds (same on every rank, so every rank builds the same model)."""
    par = setup_distributed(cfg.parallel.sp_size, cfg.parallel.sp_layout)
    seed = cfg.train.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return par


def uses_bf16(cfg) -> bool:
    """DeepSpeed bf16 (fp32 master weights) when asked for, or when the model is loaded in bf16."""
    return bool(cfg.train.bf16 or cfg.model.dtype == "bfloat16")


def datasets(cfg, tokenizer, kind: str, num_rejects: int = 1):
    """Tokenized train set and eval set (None without ``data.eval_path``)."""
    out = []
    for ev in (False, True):
        recs = load_records(cfg.data, kind, eval_split=ev)
        if recs is None:
            out.append(None)
            continue
        ts = (tokenize_preference(recs, tokenizer, cfg.data, num_rejects) if kind == "preference"
              else tokenize_sft(recs, tokenizer, cfg.data))
        if ts.skipped and is_main():
            print(f"longrm: {'eval' if ev else 'train'} data: skipped/truncated {dict(ts.skipped)}", file=sys.stderr)
        out.append(ts)
    if not out[0]:
        raise ValueError(f"data.path {cfg.data.path!r}: no usable training examples")
    return out[0], out[1]


def prepare(model, cfg, par):
    from ..modeling import prepare_model

    apply_liger(model, cfg.train.use_liger)
    return prepare_model(model, par, kernel=cfg.parallel.kernel, head_stride=cfg.parallel.head_stride)


def collator(tokenizer, par) -> Collator:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Collator(pad_id=pad, pad_to_multiple_of=par.length_divisor)


def report(name: str, result) -> int:
    if is_main():
        ev = result.eval_metrics
        msg = f"{name}: {result.steps} steps; final model in {result.final_dir}"
        if ev:
            msg += "; eval " + " ".join(f"{k}={v:.4g}" for k, v in ev.items())
        print(msg)
    return 0
