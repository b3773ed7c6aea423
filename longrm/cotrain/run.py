"""``longrm cotrain``: config sections and the run (policy GRPO with a configurable scorer; wiring in stages/cotrain.py).

Outputs in ``train.output_dir``: ``resolved_config.yaml``, ``metrics.jsonl`` (one JSON line per log step: TRL's
``reward``, ``rewards/<scorer>/mean``, ``rewards/rule/mean``, ``scorer/raw_mean``, ``loss``, ``hero/*``,
``rm/*``, …), TRL ``checkpoint-N`` folders (``train.save_every``; each also holds ``scorer_state.pt``; a rerun
resumes from the last one, scorer state included),
``final/`` (policy + tokenizer) and, when the scorer's RM was updated online, ``rm_final/``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import ModelConfig, Section, atomic_dir, publish_dir, save_resolved
from ..scorers import ScorerConfig
from .rollout import RolloutSection, server_root

__all__ = ["CotrainData", "GRPOSection", "CotrainTrain", "CotrainConfig", "build_trainer", "run_cotrain"]


class CotrainData(Section):
    path: str = Field("arithmetic:n=256,seed=0", description="prompts: 'arithmetic:n=..,seed=..,max=..,ops=+-*' "
                      "(built in) or jsonl / parquet / save_to_disk with prompt + answer (+ context) columns")
    split: str | None = Field("train", description="split inside a DatasetDict folder")
    limit: int | None = Field(None, ge=1, description="use only the first N prompts")


class GRPOSection(Section):
    num_generations: int = Field(8, ge=2, description="G: rollouts per prompt (Cooper: 16)")
    prompts_per_step: int = Field(4, ge=1, description="prompts per device per optimizer micro-step "
                                  "(TRL per_device_train_batch_size = prompts_per_step x num_generations)")
    max_completion_length: int = Field(1024, ge=1, description="max new tokens per rollout")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the rollouts")
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.001, ge=0, description="KL coefficient to the reference policy (Cooper: 0.001; 0 = no reference)")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field("dapo", description="TRL loss aggregation")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="advantage std scaling (HERO's weight multiplies the advantages after it)")
    num_iterations: int = Field(1, ge=1, description="policy updates per generation batch")
    log_completions: bool = Field(False, description="print a table of sampled completions at each log step")


class CotrainTrain(Section):
    output_dir: str = Field("outputs/cotrain", description="checkpoints, metrics.jsonl, final policy")
    seed: int = 42
    lr: float = Field(1e-6, gt=0, description="policy learning rate (Cooper: 1e-6)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: Literal["constant", "linear", "cosine", "constant_with_warmup"] = "constant"
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, ge=0, description="max grad norm (0: off)")
    max_steps: int = Field(500, ge=1, description="policy optimizer steps")
    gradient_accumulation_steps: int = Field(1, ge=1)
    bf16: bool = Field(False, description="bf16 mixed precision (TRL / accelerate)")
    log_every: int = Field(1, ge=1)
    save_every: int = Field(0, ge=0, description="TRL checkpoint every N steps (0: only the final model)")


class CotrainConfig(Section):
    model: ModelConfig = Field(default_factory=ModelConfig, description="the policy")
    scorer: ScorerConfig = ScorerConfig()
    grpo: GRPOSection = GRPOSection()
    train: CotrainTrain = CotrainTrain()
    data: CotrainData = CotrainData()
    rollout: RolloutSection = Field(RolloutSection(), description="who samples the rollouts: the local policy, an "
                                    "OpenAI-compatible server, or TRL's vLLM server mode (GPU-only)")


def _grpo_args(cfg: CotrainConfig):
    import torch
    from trl import GRPOConfig

    t, g = cfg.train, cfg.grpo
    vllm = {}
    if cfg.rollout.backend == "trl_vllm":  # GPU-only: TRL's vLLM server mode (NCCL weight sync); see rollout.check_trl_vllm
        srv = cfg.rollout.server
        vllm = dict(use_vllm=True, vllm_mode="server", vllm_server_base_url=server_root(srv.base_url),
                    vllm_server_timeout=srv.timeout, vllm_group_port=srv.group_port)
    return GRPOConfig(
        output_dir=t.output_dir, seed=t.seed, data_seed=t.seed, use_cpu=not torch.cuda.is_available(),
        bf16=t.bf16, fp16=False, learning_rate=t.lr, warmup_steps=t.warmup_ratio,  # < 1: a fraction of max_steps
        lr_scheduler_type=t.lr_scheduler, weight_decay=t.weight_decay, adam_beta1=t.adam_betas[0],
        adam_beta2=t.adam_betas[1], max_grad_norm=t.grad_clip if t.grad_clip > 0 else 1e9, max_steps=t.max_steps,
        gradient_accumulation_steps=t.gradient_accumulation_steps, logging_steps=t.log_every,
        save_strategy="steps" if t.save_every else "no", save_steps=t.save_every or 500, report_to="none",
        activation_checkpointing=cfg.model.gradient_checkpointing, dataloader_num_workers=0,
        per_device_train_batch_size=g.prompts_per_step * g.num_generations, num_generations=g.num_generations,
        max_completion_length=g.max_completion_length, temperature=g.temperature, top_p=g.top_p, beta=g.beta,
        epsilon=g.epsilon, loss_type=g.loss_type, scale_rewards=g.scale_rewards, num_iterations=g.num_iterations,
        log_completions=g.log_completions, remove_unused_columns=False, **vllm,
    )


def build_trainer(cfg: CotrainConfig, trainer_cls=None, callbacks: list | None = None):
    """Policy (``from_pretrained``), tokenizer, prompt set, scorer + verifier → a :class:`CoTrainer` (not started)."""
    from datasets import Dataset

    from ..models import load_causal_lm, load_tokenizer
    from ..scorers import build_scorer
    from ..scorers.rule import RuleScorer
    from .prompts import load_prompt_rows
    from .rollout import ServerRollout, check_trl_vllm
    from .trainer import CoTrainer, MetricsJsonl

    import torch

    ro, extra = cfg.rollout, {}
    if ro.backend == "trl_vllm":
        check_trl_vllm()  # GPU-only path: refused at once on a machine without CUDA / vllm
    elif ro.backend == "server":  # checks the server is up before any model is loaded
        extra["rollout_func"] = ServerRollout(
            ro.server, temperature=cfg.grpo.temperature, top_p=cfg.grpo.top_p,
            max_tokens=cfg.grpo.max_completion_length,
            sync_dir=ro.server.sync_dir or Path(cfg.train.output_dir) / "rollout_weights")
    torch.manual_seed(cfg.train.seed)
    tok = load_tokenizer(cfg.model)
    policy = load_causal_lm(cfg.model.model_copy(update={"gradient_checkpointing": False}))
    rows = load_prompt_rows(cfg.data.path, cfg.data.split, cfg.data.limit)
    scorer = build_scorer(cfg.scorer)
    rule = scorer if cfg.scorer.name == "rule" else getattr(scorer, "rule", None) or RuleScorer(cfg.scorer.rule.mode)
    cls = trainer_cls or CoTrainer
    out = Path(cfg.train.output_dir)
    cbs = [MetricsJsonl(out / "metrics.jsonl"), *(callbacks or [])]
    sp = cfg.scorer.spark
    return cls(model=policy, scorer=scorer, rule_scorer=rule, args=_grpo_args(cfg),
               train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=cbs,
               inject_fraction=sp.inject_fraction, max_queue=sp.max_queue, **extra)


def run_cotrain(cfg: CotrainConfig, trainer_cls=None, callbacks: list | None = None):
    """Build, train (resuming from the last ``checkpoint-N`` in the output folder), save; returns the trainer."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / ".tmp-final", ignore_errors=True)  # left by a run killed while saving
    save_resolved(cfg, out)
    trainer = build_trainer(cfg, trainer_cls, callbacks)
    last = get_last_checkpoint(str(out)) if any(out.glob("checkpoint-*")) else None
    trainer.train(resume_from_checkpoint=last)
    tmp = out / ".tmp-final"  # written whole, then renamed: never a half-written final/
    trainer.save_model(str(tmp))  # every process calls it (collective under DeepSpeed / FSDP); the main one writes
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(str(tmp))
        publish_dir(tmp, out / "final")
    trainer.accelerator.wait_for_everyone()
    rm = getattr(trainer.scorer, "rm", trainer.scorer)
    if getattr(rm, "optimizer", None) is not None and trainer.accelerator.is_main_process:
        with atomic_dir(out / "rm_final") as tmp:
            rm.save(tmp)
    if trainer.accelerator.is_main_process:
        logs = [r for r in trainer.state.log_history if "reward" in r]
        msg = f"cotrain ({cfg.scorer.name}): {trainer.state.global_step} steps; final policy in {out / 'final'}"
        if logs:
            msg += f"; reward first {logs[0]['reward']:.4g} last {logs[-1]['reward']:.4g}"
        if getattr(trainer, "scorer_state_restored", None):
            msg += f"; scorer state restored from {trainer.scorer_state_restored}"
        print(msg, file=sys.stdout)
    return trainer
