"""``longrm disrm`` — discriminative reward model: Bradley–Terry with rejects averaged (or compared one by one).

REFERENCE §1.6: ``AutoModelForSequenceClassification`` with a scalar head, reward read at the last real token
of each branch, loss −log σ(r_chosen − mean_j r_reject_j) (``disrm.reject_reduce: pairs``: mean_j −log σ(r_chosen −
r_reject_j)); §1.7 training setup.  Each example is one
shared-context row ``[context | chosen | reject_1 … reject_V]`` (the context is encoded once).  Wiring only.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from longrm.config import DataConfig, ModelConfig, ParallelConfig, Section, TrainConfig
from longrm.engine import stage
from longrm.engine.evaluate import evaluate_set
from longrm.engine.trainer import Trainer
from longrm.losses import bradley_terry, group_branches

HELP = "Discriminative reward model (scalar head): Bradley-Terry loss with rejects averaged"


class DisRMSection(Section):
    num_rejects: int = Field(2, ge=1, description="V: rejected texts per example (rejects[:V]), averaged in the loss")
    reject_reduce: Literal["mean", "pairs"] = Field(
        "mean", description="mean: -log sigmoid(r_chosen - mean_j r_reject_j) (REFERENCE 1.6); pairs: the mean over "
        "j of -log sigmoid(r_chosen - r_reject_j), so every reject must lose (one very low reject cannot carry the "
        "average while a near miss still wins)")


class Config(Section):
    model: ModelConfig = ModelConfig()
    parallel: ParallelConfig = ParallelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    disrm: DisRMSection = DisRMSection()


def run(cfg: Config) -> int:
    from longrm.models import load_seq_cls, load_tokenizer
    from longrm.modeling import branch_rewards

    par = stage.start(cfg)
    tok = load_tokenizer(cfg.model)
    v = cfg.disrm.num_rejects
    train_set, eval_set = stage.datasets(cfg, tok, "preference", v)
    model = stage.prepare(load_seq_cls(cfg.model), cfg, par)
    collate = stage.collator(tok, par)

    def step(module, batch, idx):
        r = branch_rewards(module, batch, par)
        c, rj, m = group_branches(r, batch.branch_example, batch.branch_rank, batch.num_examples, v)
        return bradley_terry(c, rj, m, reduce=cfg.disrm.reject_reduce)

    eval_fn = None
    if eval_set is not None:
        def eval_fn(engine):
            return evaluate_set(engine, eval_set, collate, step, par, cfg.train.micro_batch_size)

    trainer = Trainer(train=cfg.train, run_config=cfg, model=model, tokenizer=tok, par=par, dataset=train_set,
                      collate=collate, step_fn=step, eval_fn=eval_fn, name="disrm", bf16=stage.uses_bf16(cfg))
    return stage.report("disrm", trainer.fit())
