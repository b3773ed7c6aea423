"""``longrm align`` — Stage II preference alignment of a generative judge: LOGO (default) or DPO.

REFERENCE §1.5 (losses and defaults), §1.7 (training setup), §1.9 (reads the official ``chat_template`` +
``chosen`` + ``rejects`` rows directly).  Each example is one shared-context row ``[context | chosen |
reject_1 … reject_V]`` (compute core: shared context + SP); a row with ``rejected_prompts`` (cross-response
rejects, ``longrm synthesize``'s ``output.contrast_path``) shares its prompts' common prefix and each branch continues
with its own prompt suffix; LOGO uses per-token averaged judgement log-probs,
DPO summed ones against a frozen reference whose log-probs are computed once at step 0 and cached on disk.
Wiring only: losses in :mod:`longrm.losses`, the loop in :mod:`longrm.engine`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from longrm.config import DataConfig, ModelConfig, ParallelConfig, Section, TrainConfig
from longrm.engine import stage
from longrm.engine.evaluate import evaluate_set
from longrm.engine.refcache import reference_logps
from longrm.engine.trainer import Trainer
from longrm.losses import average_logps, dpo_sigmoid, group_branches, logo

HELP = "Stage II alignment of a generative judge: LOGO (reference-free, V rejects) or DPO (frozen reference)"


class AlignSection(Section):
    loss: Literal["logo", "dpo"] = Field("logo", description="logo (SimPO-style, reference-free) or dpo (sigmoid)")
    beta: float | None = Field(None, gt=0, description="default 2.5 for logo, 0.1 for dpo")
    gamma: float = Field(0.5, description="LOGO margin γ")
    nll_weight: float = Field(0.05, ge=0, description="LOGO weight λ of the chosen judgement's NLL")
    num_rejects: int = Field(2, ge=1, description="V: rejected judgements per example (rejects[:V]); paper Stage II 2")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="DPO: conservative label smoothing")
    ref_cache: str | None = Field(None, description="DPO reference log-prob cache (default output_dir/ref_logps*.pt)")
    logprob_chunk_size: int = Field(1024, ge=1, description="LM-head chunk (tokens) in the log-prob computation")


class Config(Section):
    model: ModelConfig = ModelConfig()
    parallel: ParallelConfig = ParallelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    align: AlignSection = AlignSection()


def _key(cfg: Config, split: str) -> dict:
    d = cfg.data
    blob = json.dumps([cfg.model.model_dump(mode="json"), d.eval_path if split == "eval" else d.path,
                       d.eval_split if split == "eval" else d.split, d.max_length, d.truncation, d.limit,
                       cfg.align.num_rejects], sort_keys=True)
    return {"split": split, "sha": hashlib.sha1(blob.encode()).hexdigest()}


def run(cfg: Config) -> int:
    from longrm.models import load_causal_lm, load_tokenizer
    from longrm.modeling import branch_logprobs

    a = cfg.align
    beta = a.beta if a.beta is not None else (2.5 if a.loss == "logo" else 0.1)
    par = stage.start(cfg)
    tok = load_tokenizer(cfg.model)
    train_set, eval_set = stage.datasets(cfg, tok, "preference", a.num_rejects)
    model = stage.prepare(load_causal_lm(cfg.model), cfg, par)
    collate = stage.collator(tok, par)
    out = Path(cfg.train.output_dir)
    refs: dict[str, torch.Tensor] = {}

    def logps(module, batch):
        return branch_logprobs(module, batch, par, chunk_size=a.logprob_chunk_size)

    def make_step(split):
        def step(module, batch, idx):
            lp, cnt = logps(module, batch)
            if a.loss == "logo":
                c, r, m = group_branches(average_logps(lp, cnt), batch.branch_example, batch.branch_rank,
                                         batch.num_examples, a.num_rejects)
                return logo(c, r, m, beta=beta, gamma=a.gamma, nll_weight=a.nll_weight)
            c, r, m = group_branches(lp, batch.branch_example, batch.branch_rank, batch.num_examples, a.num_rejects)
            ref = refs[split][idx].to(lp.device)
            ref_r = torch.where(m, ref[:, 1:], torch.zeros_like(ref[:, 1:]))
            return dpo_sigmoid(c, r, ref[:, 0], ref_r, m, beta=beta, label_smoothing=a.label_smoothing)
        return step

    def on_ready(engine, resumed):
        if a.loss != "dpo":
            return
        for split, ds in (("train", train_set), ("eval", eval_set)):
            if ds is None:
                continue
            path = Path(a.ref_cache) if a.ref_cache else out / "ref_logps.pt"
            if split == "eval":
                path = path.with_name(path.stem + "_eval" + path.suffix)
            refs[split] = reference_logps(engine, ds, collate, logps, par, path, _key(cfg, split),
                                          cfg.train.micro_batch_size, a.num_rejects, allow_compute=not resumed)

    eval_fn = None
    if eval_set is not None:
        eval_step = make_step("eval")

        def eval_fn(engine):
            return evaluate_set(engine, eval_set, collate, eval_step, par, cfg.train.micro_batch_size)

    trainer = Trainer(train=cfg.train, run_config=cfg, model=model, tokenizer=tok, par=par, dataset=train_set,
                      collate=collate, step_fn=make_step("train"), eval_fn=eval_fn, name=f"align-{a.loss}",
                      bf16=stage.uses_bf16(cfg), on_ready=on_ready)
    return stage.report(f"align ({a.loss})", trainer.fit())
