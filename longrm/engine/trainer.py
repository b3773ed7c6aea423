"""The small training loop shared by ``sft``, ``align`` and ``disrm``.

A stage hands the trainer a model, a list of tokenized examples, a ``collate`` that packs a micro-batch of
them into one :class:`~longrm.data.layout.LayoutBatch`, and a ``step_fn(module, batch, indices) ->
LossOutput`` (compute core + a loss from :mod:`longrm.losses`).  The trainer owns the rest:

- ``deepspeed.initialize`` with the generated config (:mod:`.ds_config`): ZeRO, bf16, offload, accumulation,
  clipping, AdamW and the warmup + cosine schedule are DeepSpeed's;
- the data order (:class:`.sampler.DPSampler`: SP ranks share examples, DP ranks split them);
- resume from ``output_dir/checkpoints/latest`` (model, optimizer, scheduler, data position, RNG), so
  rerunning the same command after a kill continues where the last checkpoint left off;
- checkpoints every ``save_every`` steps and at the end (:mod:`.checkpoint`), optional background Hub push;
- metrics (averaged over accumulation micro-steps and over ranks) to TensorBoard / jsonl / wandb, and a
  progress bar with ETA on rank 0 (:mod:`.logging`); optional ``eval_fn`` every ``eval_every`` steps.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import TrainConfig, save_resolved
from ..losses import LossOutput
from . import checkpoint as ckpt
from .dist import barrier, is_main
from .ds_config import build_ds_config, prime_scheduler
from .logging import MetricsLogger
from .sampler import DPSampler

__all__ = ["Trainer", "TrainResult"]


@dataclass
class TrainResult:
    steps: int
    last_metrics: dict
    eval_metrics: dict
    final_dir: str | None
    resumed_from: str | None


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_initialized() else 1


def _mean_over_world(metrics: dict[str, float], device) -> dict[str, float]:
    import torch.distributed as dist

    keys = sorted(metrics)
    if not keys or _world() == 1:
        return dict(metrics)
    t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: v / _world() for k, v in zip(keys, t.tolist())}


def _sum_over_world(x: float, device) -> float:
    import torch.distributed as dist

    if _world() == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item()


class Trainer:
    def __init__(self, *, train: TrainConfig, run_config: Any, model, tokenizer, par, dataset: Sequence,
                 collate: Callable[[list], Any], step_fn: Callable[[Any, Any, list[int]], LossOutput],
                 eval_fn: Callable[[Any], dict] | None = None, name: str = "train", bf16: bool | None = None,
                 hub_branch: str | None = None, on_ready: Callable[[Any, bool], None] | None = None):
        self.cfg, self.run_config, self.model, self.tokenizer, self.par = train, run_config, model, tokenizer, par
        self.dataset, self.collate, self.step_fn, self.eval_fn, self.name = dataset, collate, step_fn, eval_fn, name
        self.bf16 = train.bf16 if bf16 is None else bf16
        self.on_ready = on_ready  # called with (engine, resumed) once DeepSpeed is up, before the first step
        self.hub_branch = hub_branch or f"{name}-checkpoints"
        self.out = Path(train.output_dir)
        self.sampler = DPSampler(len(dataset), par.dp_size, par.dp_rank, train.micro_batch_size,
                                 train.gradient_accumulation_steps, seed=train.seed, curriculum=train.curriculum,
                                 lengths=[len(x) for x in dataset] if train.curriculum == "length" else None)
        self._submitted: list[str] = []
        self.total_steps = train.max_steps or train.epochs * self.sampler.steps_per_epoch

    # -- helpers -------------------------------------------------------------------------------------------
    def _signature(self) -> dict:
        s = self.sampler
        return {"num_examples": s.num_examples, "dp_size": s.dp_size, "micro_batch_size": s.micro_batch_size,
                "accumulation": s.accumulation, "seed": s.seed}

    def _grad_norm_now(self, engine) -> float | None:
        if engine.zero_optimization_stage() != 0:
            return None
        sq = 0.0
        for p in engine.module.parameters():
            if p.grad is not None:
                sq += p.grad.detach().float().pow(2).sum().item()
        return math.sqrt(sq)

    def _save(self, engine, step: int, state: dict, pusher) -> None:
        ckpt.save_resume(engine, self.out, step, state, self.cfg.keep_checkpoints)
        folder = ckpt.save_hf(engine, self.tokenizer, self.run_config, self.out / ckpt.HF / ckpt.tag_for(step))
        if is_main():
            pending: set[str] = set()
            if pusher is not None:  # never delete a folder the background pusher has not finished with
                pusher.submit(folder, f"{self.name} step {step}")
                self._submitted.append(str(folder))
                finished = set(pusher.done) | {e.split(": ", 1)[0] for e in pusher.errors}
                pending = {Path(f).name for f in self._submitted if f not in finished}
            ckpt._rotate(self.out / ckpt.HF, self.cfg.keep_checkpoints, protect=pending)
        barrier()

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        import deepspeed

        cfg = self.cfg
        ckpt.clean_partial(self.out)
        if is_main():
            self.out.mkdir(parents=True, exist_ok=True)
            save_resolved(self.run_config, self.out)
        torch.manual_seed(cfg.seed)
        ds_config = build_ds_config(cfg, self.total_steps, bf16=self.bf16)
        params = [p for p in self.model.parameters() if p.requires_grad]
        engine, _, _, scheduler = deepspeed.initialize(model=self.model, model_parameters=params, config=ds_config)
        prime_scheduler(scheduler)
        device = engine.device
        if is_main():
            (self.out / "ds_config.json").write_text(json.dumps(ds_config, indent=1))

        state = {"global_step": 0, "epoch": 0, "micro": 0}
        resumed = None
        client = ckpt.load_resume(engine, self.out)
        if client is not None:
            resumed = ckpt.latest_tag(self.out)
            data = client.get("longrm", {})
            if data.get("signature") not in (None, self._signature()):
                raise RuntimeError(f"{self.out}: the checkpoint was written with a different data/batch layout "
                                   f"({data.get('signature')} vs {self._signature()}); use a new output_dir")
            state = {k: data.get(k, state[k]) for k in state}
        step = state["global_step"]
        if self.on_ready is not None:
            self.on_ready(engine, resumed is not None)
        logger = MetricsLogger(self.out, enabled=is_main(), total_steps=self.total_steps, start_step=step,
                               use_wandb=cfg.wandb, run_name=self.name,
                               config=self.run_config.model_dump(mode="json") if self.run_config is not None else None)
        if resumed:
            logger.write(f"{self.name}: resumed from {self.out / ckpt.CKPT / resumed} at step {step}")
        pusher = None
        if cfg.push_checkpoints and is_main():
            if not cfg.hub_repo:
                raise ValueError("train.push_checkpoints needs train.hub_repo")
            from ..hub import BackgroundPusher

            pusher = BackgroundPusher(cfg.hub_repo, branch=self.hub_branch)

        last: dict = {}
        eval_metrics: dict = {}
        if self.eval_fn is not None and resumed is None:
            eval_metrics = self._evaluate(engine, logger, 0)  # the starting point
        saved_at = step if resumed else -1
        engine.train()
        epoch, micro = state["epoch"], state["micro"]
        acc: dict[str, float] = {}
        n_acc = 0
        tokens = 0
        t0 = time.time()
        while step < self.total_steps:
            for micro_idx, idxs in self.sampler.micro_batches(epoch, micro):
                batch = self.collate([self.dataset[i] for i in idxs])
                out = self.step_fn(engine, batch, idxs)
                engine.backward(out.loss)
                boundary = engine.is_gradient_accumulation_boundary()
                gnorm = self._grad_norm_now(engine) if boundary else None
                lr = engine.get_lr()[0]  # the lr this optimizer step uses
                engine.step()
                for k, v in {"loss": out.loss.detach(), **out.metrics}.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
                tokens += int((batch.doc_ids >= 0).sum()) if hasattr(batch, "doc_ids") else 0
                micro = micro_idx + 1
                if not boundary:
                    continue
                step += 1
                if micro >= self.sampler.micro_per_epoch:
                    epoch, micro = epoch + 1, 0
                if gnorm is None:
                    g = engine.get_global_grad_norm()
                    gnorm = float(g) if g is not None else float("nan")
                dt = max(time.time() - t0, 1e-9)
                m = _mean_over_world({k: v / n_acc for k, v in acc.items()}, device)
                tok = _sum_over_world(float(tokens), device) / self.par.sp_size  # SP ranks share rows
                m.update(lr=lr, grad_norm=gnorm, tokens_per_s=tok / dt, step_time=dt)
                last = m
                if step % cfg.log_every == 0 or step == self.total_steps:
                    logger.log(step, m)
                logger.advance()
                acc, n_acc, tokens = {}, 0, 0
                state = {"global_step": step, "epoch": epoch, "micro": micro}
                if cfg.save_every and step % cfg.save_every == 0 and step < self.total_steps:
                    self._save(engine, step, {"longrm": {**state, "signature": self._signature()}}, pusher)
                    saved_at = step
                if self.eval_fn is not None and cfg.eval_every and step % cfg.eval_every == 0 \
                        and step < self.total_steps:
                    eval_metrics = self._evaluate(engine, logger, step)
                t0 = time.time()
                if step >= self.total_steps:
                    break
            else:
                epoch, micro = epoch + 1, 0

        if saved_at != step or not (self.out / "final").exists():
            if saved_at != step:
                ckpt.save_resume(engine, self.out, step, {"longrm": {**state, "signature": self._signature()}},
                                 cfg.keep_checkpoints)
            final = ckpt.save_hf(engine, self.tokenizer, self.run_config, self.out / "final")
            if pusher is not None and final is not None:
                pusher.submit(final, f"{self.name} final (step {step})")
        if self.eval_fn is not None:
            eval_metrics = self._evaluate(engine, logger, step)
        if is_main():
            summary = {"steps": step, "train": last, "eval": eval_metrics}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
        logger.close()
        if pusher is not None:
            pusher.close()
            for err in pusher.errors:
                print(f"longrm: hub push failed: {err}")
        return TrainResult(step, last, eval_metrics, str(self.out / "final"), resumed)

    def _evaluate(self, engine, logger, step) -> dict:
        engine.eval()
        with torch.no_grad():
            metrics = self.eval_fn(engine)
        engine.train()
        logger.log(step, metrics, prefix="eval")
        return metrics
