"""GRPO co-training glue on TRL's ``GRPOTrainer`` (ARCHITECTURE.md ``cotrain``; /work/shared/notes/trl-grpo-cpu.md).

    prompts ─► policy rollouts (G per prompt) ─► scorer ─► group transform ─► advantages ─► [scorer update] ─► policy step

Per generation batch of N = P·G rollouts (each prompt's G rollouts next to each other):

1. TRL calls the reward functions: :class:`ScorerReward` (the configured scorer, weight 1) and, unless the
   scorer *is* the rule scorer, :class:`RuleReward` (the verifier, weight 0: logged as ``rewards/rule/mean``
   and handed to the hooks, never added to the reward).
2. ``_calculate_rewards`` (override): after TRL has gathered the (N, n_funcs) reward table, the scorer's
   ``group_transform(scores, groups, rule_scores)`` replaces column 0 (e.g. HERO's stratified rewards) and its
   ``advantage_weight`` is kept.
3. TRL computes GRPO advantages A_i = (r_i − mean_g r)/(std_g r + 1e-4) (``scale_rewards``).
4. ``_generate_and_score_completions`` (override): A_i ← A_i·w_i with the kept weight (HERO §3: on the
   advantages, not the rewards); then the scorer's ``update(UpdateBatch)`` hook runs — after the advantages were
   computed with the scorer's *current* parameters and before the policy's loss and optimizer step (Cooper
   order, REFERENCE §2: score → advantages → RM update → policy update).
5. TRL's loss and optimizer step on the policy (the scorer's parameters are not in the policy optimizer).

6. With an ``emit_tasks`` hook (SPARK, REFERENCE §5), the scored batch's new task rows are queued; at the next
   generation batch, up to ``inject_fraction`` of its prompt groups are replaced by queued tasks (whole groups,
   before generation: zero lag), so the policy is trained on them by the same loop and verifier.

Data parallelism (``torchrun``, several processes): TRL hands each rank its own whole prompt groups (rank r holds
rows [r·n, (r+1)·n) of the global batch) and gathers the reward table.  The group transform runs on that gathered
table.  ``update`` and ``emit_tasks`` get this rank's slice (global group ids) and the
:class:`~longrm.scorers.base.DataParallel` context; the Cooper step sums its gradients over the ranks and SPARK
gathers the batch, so both act on the whole batch and leave the scorer and the task queue identical on every
rank.  Injection replaces the last groups of the *global* batch; each rank swaps in the tasks that fall in its rows.
"""
from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from ..scorers.base import DataParallel, Sample, UpdateBatch, group_ids, has_hook, message_text

__all__ = ["CoTrainer", "ScorerReward", "RuleReward", "to_samples", "MetricsJsonl"]


_text = message_text  # a prompt / completion as text (user turns of chat messages)


def to_samples(prompts: list, completions: list, group_size: int, answer: list | None = None,
               context: list | None = None, rubric: list | None = None) -> list[Sample]:
    """TRL's reward-function arguments (N prompts / completions, groups of ``group_size`` in a row) → [N] samples."""
    n = len(prompts)
    groups = group_ids(n, group_size).tolist() if n % group_size == 0 else list(range(n))
    out = []
    for i in range(n):
        p = prompts[i]
        out.append(Sample(prompt=_text(p), completion=_text(completions[i]),
                          answer=None if answer is None or answer[i] is None else str(answer[i]),
                          group=groups[i], context=None if context is None else context[i],
                          messages=p if isinstance(p, list) else None,
                          rubric=None if rubric is None else rubric[i]))
    return out


class ScorerReward:
    """TRL reward function around a scorer: ``f(prompts=, completions=, answer=, context=, **kw) -> [N] floats``.

    Keeps the last call's samples (``last_samples``) for the update hook.
    """

    def __init__(self, scorer, group_size: int):
        self.scorer, self.group_size = scorer, group_size
        self.__name__ = scorer.name
        self.last_samples: list[Sample] = []

    def __call__(self, prompts, completions, answer=None, context=None, rubric=None, **kw) -> list[float]:
        self.last_samples = to_samples(prompts, completions, self.group_size, answer, context, rubric)
        return [float(x) for x in self.scorer.score(self.last_samples)]


class RuleReward:
    """The verifier as a TRL reward function (logged; weight 0 in the reward); None where there is no answer."""

    __name__ = "rule"

    def __init__(self, rule_scorer, group_size: int):
        self.rule, self.group_size = rule_scorer, group_size

    def __call__(self, prompts, completions, answer=None, **kw) -> list[float | None]:
        s = self.rule.score(to_samples(prompts, completions, self.group_size, answer))
        return [None if x != x else x for x in s]


class CoTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose reward is a scorer, with the scorer's group transform and update hook wired in.

    ``scorer``: the configured scorer; ``rule_scorer``: the verifier (the same object when the scorer is ``rule``).
    Everything else is passed to ``GRPOTrainer`` (``model``, ``args``, ``train_dataset``, ``processing_class``, …);
    ``reward_funcs`` / ``reward_weights`` are set here.  ``last_batch`` holds the latest generation batch's
    raw scores, rule scores, transformed rewards and advantage weights ([N] tensors, global order).
    """

    def __init__(self, *, scorer, rule_scorer, args, inject_fraction: float = 0.5, max_queue: int = 1024, **kw):
        g = args.num_generations
        self.scorer_reward = ScorerReward(scorer, g)
        funcs: list = [self.scorer_reward]
        self.rule_col = 0
        if rule_scorer is not scorer:
            funcs.append(RuleReward(rule_scorer, g))
            self.rule_col = 1
        args.reward_weights = [1.0] + [0.0] * (len(funcs) - 1)
        args.multi_objective_aggregation = "sum_then_normalize"
        self.scorer = scorer
        self.last_batch: dict[str, torch.Tensor | None] = {}
        self.task_queue: deque[dict] = deque(maxlen=max_queue)
        self._counters: dict[str, int] = {}
        self.inject_fraction = inject_fraction
        super().__init__(reward_funcs=funcs, args=args, **kw)
        self.dp = DataParallel.from_torch() if self.accelerator.num_processes > 1 else DataParallel()
        if (self.dp.size, self.dp.rank) != (self.accelerator.num_processes, self.accelerator.process_index):
            raise RuntimeError(f"torch.distributed world {self.dp.size} / rank {self.dp.rank} differs from accelerate's "
                               f"{self.accelerator.num_processes} / {self.accelerator.process_index}")

    def _mode(self) -> str:
        return "train" if self.model.training else "eval"

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rpf = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = self._mode()
        g = self.num_generations if mode == "train" else self.num_generations_eval
        scores = rpf[:, 0].detach().clone().cpu()
        rule = rpf[:, self.rule_col].detach().clone().cpu()
        self.last_batch = {"scores": scores, "rule_scores": rule, "rewards": scores, "advantage_weight": None}
        self._metrics[mode]["scorer/raw_mean"].append(float(torch.nanmean(scores)))
        self._log_counters(mode)
        if has_hook(self.scorer, "group_transform"):
            gt = self.scorer.group_transform(scores, group_ids(len(scores), g), rule)
            rpf = rpf.clone()
            rpf[:, 0] = gt.rewards.to(rpf.device, rpf.dtype)
            self.last_batch.update(rewards=gt.rewards.detach().cpu(),
                                   advantage_weight=None if gt.advantage_weight is None else gt.advantage_weight.cpu())
            for k, v in gt.metrics.items():
                self._metrics[mode][k].append(float(v))
        return rpf

    def _inject_tasks(self, inputs: list[dict]) -> int:
        """Replace the last k prompt groups of the global batch (G rows each) by queued tasks; returns k.

        Up to max(1, ⌊inject_fraction · global groups⌋) slots; the scorer's ``pick_tasks(queue, slots)`` pops the
        tasks that fill them (SPARK: oldest first, or a fixed mix of task kinds), else the oldest; k = how many it
        gave.  Task j takes global group ``groups − 1 − j``.  ``inputs`` are this rank's rows, global groups
        [rank·L, (rank+1)·L) (TRL's layout); every rank pops the same tasks from its (identical) queue and swaps in
        those that fall in its groups.  A task row keeps the batch's columns (others None) with its own ``prompt``
        and ``answer``.
        """
        g = self.num_generations
        n_local = len(inputs) // g
        n_groups = n_local * self.dp.size
        slots = max(1, int(self.inject_fraction * n_groups))
        if has_hook(self.scorer, "pick_tasks"):
            tasks = self.scorer.pick_tasks(self.task_queue, slots)
        else:
            tasks = [self.task_queue.popleft() for _ in range(min(slots, len(self.task_queue)))]
        k = len(tasks)
        for j, task in enumerate(tasks):
            local = n_groups - 1 - j - self.dp.rank * n_local
            if not 0 <= local < n_local:
                continue
            row = {key: None for key in inputs[0]}
            row.update(prompt=task["prompt"], answer=task["answer"])
            for i in range(local * g, (local + 1) * g):
                inputs[i] = dict(row)
        return k

    def _update_batch(self, advantages: torch.Tensor) -> UpdateBatch:
        """This rank's slice of the scored generation batch for the hooks: its samples with global group ids,
        its rows of the gathered scores, its advantages, and the data-parallel context."""
        n = advantages.shape[0]
        start = self.dp.rank * n
        offset = start // self.num_generations
        local = self.scorer_reward.last_samples
        if len(local) != n:
            raise RuntimeError(f"scored {len(local)} local rollouts but got {n} advantages")
        samples = [s if offset == 0 else replace(s, group=s.group + offset) for s in local]
        return UpdateBatch(samples=samples, scores=self.last_batch["scores"][start:start + n],
                           rule_scores=self.last_batch["rule_scores"][start:start + n],
                           advantages=advantages.detach().cpu(), dp=self.dp)

    SCORER_STATE = "scorer_state.pt"

    def _save_checkpoint(self, model, trial):
        """TRL's checkpoint + ``scorer_state.pt``: the scorer's ``state_dict()`` (online RM weights and optimizer,
        HERO's σ̄, SPARK's RNG) and the queued tasks."""
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            state = self.scorer.state_dict() if callable(getattr(self.scorer, "state_dict", None)) else {}
            torch.save({"scorer": state, "task_queue": list(self.task_queue)}, os.path.join(folder, self.SCORER_STATE))

    def _load_optimizer_and_scheduler(self, checkpoint):
        """On resume, also restore ``scorer_state.pt`` (written by :meth:`_save_checkpoint`) when present."""
        super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, self.SCORER_STATE) if checkpoint is not None else None
        if path and os.path.exists(path):
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if callable(getattr(self.scorer, "load_state_dict", None)):
                self.scorer.load_state_dict(saved["scorer"])
            self.task_queue.clear()
            self.task_queue.extend(saved["task_queue"])
            self.scorer_state_restored = path

    def _log_counters(self, mode: str) -> None:
        """Per-batch increments of the judge counters a scorer (or HERO's RM) keeps: ``parse_failures``
        (outputs that fell back to the default / all-"no"), ``retries`` (rubric re-asks) → ``scorer/<name>``."""
        for obj in (self.scorer, getattr(self.scorer, "rm", None)):
            for name in ("parse_failures", "retries"):
                v = getattr(obj, name, None)
                if isinstance(v, int) and not isinstance(v, bool):
                    prev = self._counters.get(name, 0)
                    self._metrics[mode][f"scorer/{name}"].append(float(v - prev))
                    self._counters[name] = v

    def _generate_and_score_completions(self, inputs):
        injected = 0
        if self._mode() == "train" and self.task_queue:
            inputs = list(inputs)
            injected = self._inject_tasks(inputs)
        out = super()._generate_and_score_completions(inputs)
        w = self.last_batch.get("advantage_weight")
        if w is not None:
            n_local = out["advantages"].shape[0]
            start = self.accelerator.process_index * n_local
            out["advantages"] = out["advantages"] * w[start:start + n_local].to(out["advantages"])
        if self._mode() == "train" and has_hook(self.scorer, "update"):
            for k, v in (self.scorer.update(self._update_batch(out["advantages"])) or {}).items():
                self._metrics["train"][k].append(float(v))
        if self._mode() == "train" and has_hook(self.scorer, "emit_tasks"):
            tasks = self.scorer.emit_tasks(self._update_batch(out["advantages"]))
            self.task_queue.extend(tasks)
            self._metrics["train"]["tasks/emitted"].append(float(len(tasks)))
            self._metrics["train"]["tasks/injected_groups"].append(float(injected))
            self._metrics["train"]["tasks/queue"].append(float(len(self.task_queue)))
        return out


class MetricsJsonl(TrainerCallback):
    """Appends every log record as one JSON line ``{"split", "step", ...}`` to ``path`` (main process only)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs:
            return
        row = {"split": "train", "step": state.global_step}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str, bool))})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
