import math

import pytest
import torch

from longrm.config import TrainConfig
from longrm.engine.ds_config import build_ds_config, prime_scheduler


def _lrs(cfg, total):
    from deepspeed.runtime.lr_schedules import WarmupCosineLR

    ds = build_ds_config(cfg, total)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sch = WarmupCosineLR(opt, **ds["scheduler"]["params"])
    prime_scheduler(sch)  # what the trainer does after deepspeed.initialize
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        sch.step()
    return out


def test_generated_config_carries_the_train_section():
    cfg = TrainConfig(zero_stage=3, bf16=True, offload_optimizer=True, gradient_accumulation_steps=4, grad_clip=1.0,
                      lr=2e-6, adam_betas=(0.9, 0.95))
    ds = build_ds_config(cfg, 100)
    assert ds["zero_optimization"]["stage"] == 3 and ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["bf16"]["enabled"] and ds["gradient_accumulation_steps"] == 4 and ds["gradient_clipping"] == 1.0
    assert ds["optimizer"]["params"]["betas"] == [0.9, 0.95]
    assert ds["scheduler"]["type"] == "WarmupCosineLR"
    with pytest.raises(ValueError):
        build_ds_config(TrainConfig(zero_stage=0, offload_optimizer=True), 10)


def test_cosine_schedule_with_warmup_and_floor():
    cfg = TrainConfig(lr=1.0, warmup_ratio=0.1, min_lr_ratio=0.1)
    lrs = _lrs(cfg, 100)
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5)  # linear warmup over 10 steps
    assert max(lrs) <= 1.0 + 1e-9 and lrs[10] == pytest.approx(1.0, abs=1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then monotone cosine decay
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)  # down to min_lr_ratio * lr
    mid = 10 + 45
    assert lrs[mid] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 46 / 90)) / 2, abs=1e-6)


def test_no_warmup_starts_at_full_lr(tmp_path):
    lrs = _lrs(TrainConfig(lr=1.0, warmup_ratio=0.0, min_lr_ratio=0.0), 20)
    assert lrs[0] == 1.0


def test_user_deepspeed_json_is_merged(tmp_path):
    p = tmp_path / "ds.json"
    p.write_text('{"zero_optimization": {"reduce_bucket_size": 1000}, "wall_clock_breakdown": true}')
    ds = build_ds_config(TrainConfig(zero_stage=2, deepspeed_config=str(p)), 10)
    assert ds["zero_optimization"]["stage"] == 2 and ds["zero_optimization"]["reduce_bucket_size"] == 1000
    assert ds["wall_clock_breakdown"] is True
