"""Every step of the shipped pipeline presets (quickstart, SmolLM2) resolves to a valid stage config — the
config file with the step's overrides, as ``longrm pipeline`` would run it — and the SmolLM2 preset's held-out
family is not among its training families."""
from pathlib import Path

import pytest

from longrm.cli import discover_stages
from longrm.config import load_config
from stages.pipeline import Config as PipelineFile

REPO = Path(__file__).resolve().parents[2]
PRESETS = ["configs/quickstart.yaml", "configs/smollm2/pipeline.yaml"]


def _steps(preset: str, out: str):
    cfg = load_config(PipelineFile, REPO / preset)
    stages = discover_stages()
    for step in cfg.pipeline.steps:
        overrides = [a.replace("{out}", out) for a in step.overrides]
        yield step, load_config(stages[step.stage].Config, REPO / step.config, overrides)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_step_validates(preset, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = str(tmp_path / "out")
    names = []
    for step, cfg in _steps(preset, out):
        names.append(step.name or step.stage)
        dumped = cfg.model_dump_json()
        assert "{out}" not in dumped  # every placeholder was filled
    assert len(set(names)) == len(names)


def test_smollm2_heldout_family_is_not_trained_on(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = str(tmp_path / "out")
    steps = dict((s.name or s.stage, c) for s, c in _steps("configs/smollm2/pipeline.yaml", out))
    syn = steps["synthesize"]
    held, train = set(syn.heldout.families), set(syn.source.synthetic.families)
    assert held == {"timeline"} and train == {"multihop", "lookup"} and not held & train
    assert syn.heldout.seed != syn.source.synthetic.seed
    # the judges are trained on the synthesized data and evaluated on the held-out rows
    assert steps["sft"].data.path == f"{out}/synthesize/data"
    assert steps["disrm"].data.path == f"{out}/synthesize/rm.jsonl"
    for name in ("eval-sft", "eval-logo", "eval-base", "eval-disrm", "eval-disrm-base"):
        assert steps[name].data.path == f"{out}/synthesize/heldout.jsonl"
    assert steps["eval-disrm"].judge.mode == "discriminative"
    assert steps["eval-logo"].model.name_or_path == f"{out}/align/final"
    for name in ("eval-disrm", "eval-disrm-base"):  # best-of-N rank match is reported for the DisRM
        assert set(steps[name].data.tasktypes) == {"PairWise", "BestOfN"} and steps[name].judge.share_prefix
