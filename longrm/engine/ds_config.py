"""The DeepSpeed config generated from :class:`~longrm.config.TrainConfig` (REFERENCE §1.7).

Everything DeepSpeed already does is left to it: ZeRO stage 0–3, bf16 mixed precision (fp32 master weights),
optimizer offload to CPU, gradient accumulation, gradient clipping, the optimizer (AdamW) and the learning-rate
schedule (``WarmupCosineLR``: linear warmup, then cosine decay to ``min_lr_ratio · lr``).  The batch size is
given per rank (``train_micro_batch_size_per_gpu``: examples packed into one row) and DeepSpeed derives the
global batch over the whole world; under sequence parallelism the SP ranks of a group see the same row, and
the gradient convention of docs/CONTRACTS.md makes world-averaging give the DP average.

``train.deepspeed_config`` (JSON or YAML) is merged over the generated dict, key by key, for anything else.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from ..config import TrainConfig

__all__ = ["build_ds_config", "warmup_steps", "merge", "prime_scheduler"]


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    return int(math.ceil(cfg.warmup_ratio * total_steps))


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_ds_config(cfg: TrainConfig, total_steps: int, *, bf16: bool | None = None) -> dict[str, Any]:
    """DeepSpeed config dict for ``total_steps`` optimizer steps (``bf16`` overrides ``cfg.bf16``)."""
    use_bf16 = cfg.bf16 if bf16 is None else bf16
    warm = warmup_steps(cfg, total_steps)
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage >= 1:
        zero.update(overlap_comm=False, contiguous_gradients=True)
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if cfg.offload_optimizer:
        if cfg.zero_stage == 0:
            raise ValueError("train.offload_optimizer needs train.zero_stage >= 1")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    ds: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": 1,  # one packed row per micro step (micro_batch_size examples in it)
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": bool(use_bf16)},
        "fp16": {"enabled": False},
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": cfg.lr, "betas": list(cfg.adam_betas), "eps": 1e-8, "weight_decay": cfg.weight_decay},
        },
        "scheduler": {
            "type": "WarmupCosineLR",
            "params": {
                "total_num_steps": max(1, total_steps),
                # DeepSpeed warms up for at least 2 steps; without requested warmup those start at the full lr
                "warmup_num_steps": max(2, warm),
                "warmup_min_ratio": 0.0 if warm > 0 else 1.0,
                "warmup_type": "linear",
                "cos_min_ratio": cfg.min_lr_ratio,
            },
        },
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
    if cfg.deepspeed_config:
        p = Path(cfg.deepspeed_config)
        text = p.read_text()
        extra = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        ds = merge(ds, extra or {})
    return ds


def prime_scheduler(scheduler) -> None:
    """Advance a fresh ``WarmupCosineLR`` to iteration 0, so optimizer step k uses iteration k-1.

    DeepSpeed's scheduler starts at iteration -1 (lr 0) and steps after each optimizer step, which would spend
    the first step at lr 0 and the second at the warmup floor; primed, step 1 uses the floor (0 with warmup,
    the full lr without) like ``transformers``' cosine schedule.  Resumed runs load the saved state instead.
    """
    if scheduler is not None and getattr(scheduler, "last_batch_iteration", 0) == -1:
        scheduler.step()
