"""``longrm verifyrm`` — Cooper's VerifyRM pre-training: hybrid annotation, then BCE (REFERENCE §2).

(question, reference answer, response) rows are labelled by the rule verifier and an LLM judge (local model or an
OpenAI-compatible server); only the agreements are kept (``<train.output_dir>/annotated/``: kept rows, every row
with both labels, ``report.json`` with the counts).  A scalar-head model (``AutoModelForSequenceClassification``)
then reads each row as Cooper's VerifyRM text — the text the co-training loop scores with
``scorer.longrm.input_format: verify`` — and is trained with binary cross-entropy on the label at the last token.
The final model (``<train.output_dir>/final``) is the ``scorer.longrm.model`` of a Cooper run.  Wiring only: the
annotation, the data and the evaluation are in :mod:`longrm.scorers.verifyrm`, the loss in :mod:`longrm.losses`.
"""
from __future__ import annotations

import json
import sys
from typing import Literal

from pydantic import Field

from longrm.config import DataConfig, ModelConfig, ParallelConfig, Section, TrainConfig
from longrm.engine import stage
from longrm.engine.dist import barrier, is_main
from longrm.engine.trainer import Trainer
from longrm.losses import pointwise_bce
from longrm.scorers import JudgeServerSection

HELP = "Cooper VerifyRM pre-training: rule verifier + LLM judge label rows, agreements kept, BCE on the verify text"


class VerifyRMSection(Section):
    annotate: bool = Field(True, description="label data.path / data.eval_path with the rule verifier and the LLM "
                           "judge and keep the agreements; false: the rows already carry a 0/1 'label'")
    rule_mode: Literal["auto", "math_verify", "exact"] = Field("auto", description="the rule verifier's checker")
    judge: ModelConfig = Field(default_factory=lambda: ModelConfig(dtype="float32", gradient_checkpointing=False),
                               description="the LLM judge (a chat LM answering Yes / No)")
    judge_backend: Literal["local", "server"] = Field("local", description="local from_pretrained judge, or an "
                                                      "OpenAI-compatible server (verifyrm.judge_server)")
    judge_server: JudgeServerSection = JudgeServerSection()
    judge_max_new_tokens: int = Field(8, ge=1, description="judge budget per verdict (greedy)")
    judge_batch_size: int = Field(16, ge=1, description="judge conversations per call")
    device: str = Field("auto", description="device of a local judge (auto: GPU if available)")


class Config(Section):
    model: ModelConfig = ModelConfig()
    parallel: ParallelConfig = ParallelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = Field(DataConfig(), description="path / eval_path: unlabelled (question, reference, response) "
                             "rows: a file or 'arithmetic-verify:n=..,seed=..,k=..,long_right=..'")
    verifyrm: VerifyRMSection = VerifyRMSection()


def run(cfg: Config) -> int:
    import torch

    from longrm.models import load_seq_cls, load_tokenizer
    from longrm.modeling import branch_rewards
    from longrm.scorers.verifyrm import evaluate_verify, prepare_sets, tokenize_verify

    par = stage.start(cfg)
    train_rows, eval_rows, report = prepare_sets(cfg.data, cfg.verifyrm, cfg.train.output_dir, main=is_main(),
                                                 barrier=barrier)
    if is_main():
        counts = {k: v for k, v in report.items() if k != "key"}
        print(f"verifyrm: annotation {json.dumps(counts)}", file=sys.stderr)
    tok = load_tokenizer(cfg.model)
    sets = [tokenize_verify(rows, tok, cfg.data.max_length, cfg.data.truncation) if rows is not None else None
            for rows in (train_rows, eval_rows)]
    train_set, eval_set = sets
    if not train_set:
        raise ValueError(f"data.path {cfg.data.path!r}: no labelled training rows (annotation report: "
                         f"{json.dumps(report.get('train'))})")
    model = stage.prepare(load_seq_cls(cfg.model), cfg, par)
    collate = stage.collator(tok, par)

    def step_for(ds):
        def step(module, batch, idx):
            r = branch_rewards(module, batch, par)
            y = torch.tensor([ds.labels[i] for i in idx], device=r.device)[batch.branch_example.to(r.device)]
            return pointwise_bce(r, y)
        return step

    eval_fn = None
    if eval_set:
        def eval_fn(engine):
            return evaluate_verify(engine, eval_set, collate, step_for(eval_set), par, cfg.train.micro_batch_size)

    trainer = Trainer(train=cfg.train, run_config=cfg, model=model, tokenizer=tok, par=par, dataset=train_set,
                      collate=collate, step_fn=step_for(train_set), eval_fn=eval_fn, name="verifyrm",
                      bf16=stage.uses_bf16(cfg))
    return stage.report("verifyrm", trainer.fit())
