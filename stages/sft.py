"""``longrm sft`` — Stage I cold start of a generative judge: NLL on the judgement tokens only.

REFERENCE §1.4 (SFT on short RM data ∪ long synthetic data, loss on the judgement), §1.7 (training setup),
§1.9 (reads the official ``chat_template`` + ``golden`` rows directly).  Each example is the shared-context
layout with one branch (the target judgement), several packed into one row.  On CUDA with
``train.use_liger`` the loss runs through liger's fused linear cross-entropy; otherwise the compute core's
chunked LM head computes the same NLL.  Wiring only.
"""
from __future__ import annotations

from pydantic import Field

from longrm.config import DataConfig, ModelConfig, ParallelConfig, Section, TrainConfig
from longrm.engine import stage
from longrm.engine.evaluate import evaluate_set
from longrm.engine.kernels import liger_active, sft_nll_liger
from longrm.engine.trainer import Trainer
from longrm.losses import sft_nll

HELP = "Stage I cold start of a generative judge: supervised NLL on the judgement tokens only"


class SFTSection(Section):
    logprob_chunk_size: int = Field(1024, ge=1, description="LM-head chunk (tokens) in the loss computation")


class Config(Section):
    model: ModelConfig = ModelConfig()
    parallel: ParallelConfig = ParallelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    sft: SFTSection = SFTSection()


def run(cfg: Config) -> int:
    from longrm.models import load_causal_lm, load_tokenizer
    from longrm.modeling import branch_logprobs

    par = stage.start(cfg)
    tok = load_tokenizer(cfg.model)
    train_set, eval_set = stage.datasets(cfg, tok, "sft")
    model = stage.prepare(load_causal_lm(cfg.model), cfg, par)
    collate = stage.collator(tok, par)
    fused = liger_active(cfg.train.use_liger)

    def step(module, batch, idx):
        if fused:  # CUDA only
            return sft_nll_liger(module, batch, par)
        lp, cnt = branch_logprobs(module, batch, par, chunk_size=cfg.sft.logprob_chunk_size)
        return sft_nll(lp, cnt)

    eval_fn = None
    if eval_set is not None:
        def eval_fn(engine):
            return evaluate_set(engine, eval_set, collate, step, par, cfg.train.micro_batch_size)

    trainer = Trainer(train=cfg.train, run_config=cfg, model=model, tokenizer=tok, par=par, dataset=train_set,
                      collate=collate, step_fn=step, eval_fn=eval_fn, name="sft", bf16=stage.uses_bf16(cfg))
    return stage.report("sft", trainer.fit())
