"""Cluster presets (configs/cluster/) validate with their stage's schema and hold the paper's setup (REFERENCE
§1.7); ``longrm plan`` prints world size, dp x sp, tokens per rank, parameters and a per-GPU memory estimate
without a GPU or a download; the parameter formula equals real models' parameter counts."""
import json
from pathlib import Path

import pytest

from longrm.cli import discover_stages, main
from longrm.config import load_config
from longrm.engine.ds_config import build_ds_config
from longrm.plan import ARCH_TABLE, arch_from_config, build_plan, find_arch, param_count

REPO = Path(__file__).resolve().parents[1]
PRESETS = {  # file -> (stage, parameters in billions)
    "qwen3_8b_sft.yaml": ("sft", 8.19), "qwen3_8b_align.yaml": ("align", 8.19),
    "llama31_8b_sft.yaml": ("sft", 8.03), "llama31_8b_align.yaml": ("align", 8.03),
    "llama31_8b_disrm.yaml": ("disrm", 7.50),
}


def _load(name: str):
    stage, _ = PRESETS[name]
    return stage, load_config(discover_stages()[stage].Config, REPO / "configs" / "cluster" / name)


def test_every_preset_is_listed():
    assert sorted(p.name for p in (REPO / "configs" / "cluster").glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates_with_the_paper_setup(name, monkeypatch):
    monkeypatch.chdir(REPO)  # train.deepspeed_config is relative to the repo, as the sbatch scripts run there
    stage, cfg = _load(name)
    t, p = cfg.train, cfg.parallel
    assert (t.lr, t.warmup_ratio, tuple(t.adam_betas), t.weight_decay, t.grad_clip) == (2e-6, 0.03, (0.9, 0.95), 0, 1.0)
    assert t.bf16 and cfg.model.dtype == "bfloat16" and cfg.model.gradient_checkpointing and 0 < t.min_lr_ratio < 1
    assert (t.zero_stage, t.micro_batch_size, t.gradient_accumulation_steps, t.epochs) == (2, 1, 32, 1)
    assert (p.sp_size, p.head_stride, cfg.data.max_length) == (8, 4, 131072)
    assert t.output_dir.startswith("outputs/") and stage in t.output_dir
    ds = build_ds_config(t, 100, bf16=True)  # the ZeRO JSON is merged over the generated config
    z = ds["zero_optimization"]
    assert z["stage"] == 2 and z["overlap_comm"] is True and z["reduce_scatter"] is True
    assert ds["scheduler"]["type"] == "WarmupCosineLR" and ds["scheduler"]["params"]["cos_min_ratio"] == t.min_lr_ratio
    assert ds["optimizer"]["params"]["betas"] == [0.9, 0.95] and ds["gradient_clipping"] == 1.0
    if stage == "align":
        a = cfg.align
        assert (a.loss, a.beta, a.gamma, a.nll_weight, a.num_rejects) == ("logo", 2.5, 0.5, 0.05, 2)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_plan_numbers_are_sane(name, monkeypatch):
    monkeypatch.chdir(REPO)
    stage, cfg = _load(name)
    plan = build_plan(stage, cfg, nodes=1, gpus_per_node=8, gpu_memory_gb=80)
    assert (plan.world, plan.dp, plan.sp, plan.tokens_per_rank, plan.global_batch) == (8, 1, 8, 16384, 32)
    assert "built-in table" in plan.arch.source  # no weights here: the architecture table
    assert plan.params["total"] / 1e9 == pytest.approx(PRESETS[name][1], abs=0.01)
    m, P = plan.memory, plan.params["total"]
    assert m["weights"] == 2 * P and m["gradients"] == 2 * P / 8 and m["optimizer"] == 12 * P / 8  # ZeRO-2, bf16
    assert 30e9 < m["total"] < 60e9 and plan.fits  # the paper trained these on 8 x A100-80GB
    assert not any("context window" in w for w in plan.warnings)  # Qwen3's presets set YaRN to 128K
    assert plan.arch.context_limit >= 131072


def test_plan_warns_without_rope_scaling(monkeypatch):
    monkeypatch.chdir(REPO)
    stage, cfg = _load("qwen3_8b_sft.yaml")
    cfg.model.rope_scaling = None
    plan = build_plan(stage, cfg)
    assert any("context window 40960" in w and "model.rope_scaling" in w for w in plan.warnings)


def test_plan_scales_with_nodes_and_zero():
    stage, cfg = _load("llama31_8b_align.yaml")
    two = build_plan(stage, cfg, nodes=2, gpus_per_node=8)
    assert (two.world, two.dp, two.global_batch) == (16, 2, 64)
    assert two.memory["optimizer"] == pytest.approx(12 * two.params["total"] / 16)
    cfg.train.zero_stage = 3
    z3 = build_plan(stage, cfg)
    assert z3.memory["weights"] == pytest.approx(2 * z3.params["total"] / 8)
    cfg.train.offload_optimizer = True
    assert build_plan(stage, cfg).memory["optimizer"] == 0
    cfg.train.zero_stage, cfg.train.offload_optimizer, cfg.parallel.sp_size = 2, False, 1
    cfg.model.gradient_checkpointing = False
    one = build_plan(stage, cfg)
    assert one.tokens_per_rank == 131072 and not one.fits and any("exceeds the GPU memory" in w for w in one.warnings)
    with pytest.raises(ValueError, match="sp_size 8 does not divide the world size 4"):
        cfg.parallel.sp_size = 8
        build_plan(stage, cfg, gpus_per_node=4)


def test_yarn_in_config_json_lifts_the_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    stage, cfg = _load("qwen3_8b_sft.yaml")
    local = tmp_path / "qwen3-8b-yarn"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({**ARCH_TABLE["qwen3-8b"], "rope_scaling": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}))
    cfg.model.name_or_path = str(local)
    plan = build_plan(stage, cfg)
    assert plan.arch.source == str(local / "config.json") and plan.arch.context_limit == 131072
    assert not plan.warnings


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "llama", "llama-tied"])
def test_param_formula_equals_real_models(kind):
    import torch
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig, Qwen2Config,
                              Qwen3Config)

    kw = dict(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2)
    cls = {"qwen2": Qwen2Config, "qwen3": Qwen3Config, "llama": LlamaConfig, "llama-tied": LlamaConfig}[kind]
    cfg = cls(**kw, tie_word_embeddings=kind == "llama-tied", **({"head_dim": 24} if kind == "qwen3" else {}))
    arch = arch_from_config(cfg.to_dict(), kind)
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(cfg)
        rm = AutoModelForSequenceClassification.from_config(cfg.__class__(**{**cfg.to_dict(), "num_labels": 1}))
    assert param_count(arch)["total"] == _numel(lm)
    assert param_count(arch, head="score")["total"] == _numel(rm)


def test_table_matches_the_named_models():
    assert param_count(find_arch("Qwen/Qwen3-8B"))["total"] == 8_190_735_360  # Qwen3-8B: 8.19 B
    assert param_count(find_arch("meta-llama/Llama-3.1-8B"))["total"] == 8_030_261_248  # Llama-3.1-8B: 8.03 B
    with pytest.raises(ValueError, match="plan.model"):
        find_arch("someone/unknown-7b")


def test_cli_prints_the_plan(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    rc = main(["plan", "--config", "configs/cluster/llama31_8b_align.yaml", "--plan.nodes", "2",
               "--plan.print_json", "true", "--train.gradient_accumulation_steps", "16"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "world size    16 = dp 2 x sp 8 (head stride 4" in out
    assert "tokens/rank   16,384 per micro step" in out and "= 32 rows per optimizer step" in out
    assert "parameters    8.03 B" in out and "-> fits in 80 GB" in out and "warning:" not in out
    info = json.loads(out.strip().splitlines()[-1])
    assert (info["world_size"], info["dp"], info["sp"], info["global_batch"]) == (16, 2, 8, 32)


def test_cli_errors(capsys, tiny_model_dir):
    assert main(["plan", "--config", str(REPO / "configs" / "cluster" / "qwen3_8b_sft.yaml"),
                 "--train.lr", "-1"]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["plan", "--config", str(REPO / "configs" / "cluster" / "qwen3_8b_sft.yaml"),
                 "--plan.gpus_per_node", "4"]) == 2
    assert "does not divide the world size 4" in capsys.readouterr().err
    # a local model folder: the numbers come from its config.json (the tiny CPU configs plan too)
    assert main(["plan", "--config", str(REPO / "configs" / "align_tiny.yaml"), "--model.name_or_path",
                 str(tiny_model_dir), "--plan.gpus_per_node", "2"]) == 0
    out = capsys.readouterr().out
    assert f"from {tiny_model_dir / 'config.json'}" in out and "world size    2 = dp 2 x sp 1" in out
