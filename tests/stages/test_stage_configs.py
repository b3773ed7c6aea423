"""Every shipped stage config validates; the CLI discovers the three training stages."""
from pathlib import Path

import pytest

from longrm.cli import discover_stages
from longrm.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stage", ["sft", "align", "disrm"])
def test_configs_validate(stage):
    mod = discover_stages()[stage]
    for name in (f"{stage}.yaml", f"{stage}_tiny.yaml"):
        cfg = load_config(mod.Config, REPO / "configs" / name)
        assert cfg.train.output_dir
    full = load_config(mod.Config, REPO / "configs" / f"{stage}.yaml")
    # the paper's setup (REFERENCE §1.7)
    assert (full.train.lr, full.train.warmup_ratio, full.train.adam_betas, full.train.grad_clip) == (2e-6, 0.03, (0.9, 0.95), 1.0)
    assert full.train.zero_stage == 2 and full.train.bf16 and full.parallel.sp_size == 8
    assert full.data.max_length == 131072


def test_align_defaults_are_the_official_ones():
    mod = discover_stages()["align"]
    a = mod.Config().align
    assert (a.loss, a.gamma, a.nll_weight) == ("logo", 0.5, 0.05) and a.beta is None  # beta: 2.5 for logo


def test_help_lists_training_stages(capsys):
    from longrm.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for s in ("sft", "align", "disrm"):
        assert f"  {s}" in out
    assert main(["align", "--help"]) == 0
    assert "align.num_rejects" in capsys.readouterr().out
