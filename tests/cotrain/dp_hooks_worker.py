"""The Cooper RM update and SPARK task emission under data parallelism, against one process on the same global batch.

Rollouts are canned (a fixed function of the prompt and the rollout's index in its group, see :func:`canned`), so a
run with 2 processes x P prompts and a run with 1 process x 2P prompts see exactly the same global batches (TRL's
sampler gives both the same prompts with the same seed).  Everything else is the real loop: TRL's GRPO, the scorer,
the hooks, the policy step.

    python -m torch.distributed.run --nproc_per_node 2 tests/cotrain/dp_hooks_worker.py POLICY OUT SCENARIO...

writes ``OUT/<scenario>/rank<r>.json`` + ``rank<r>.pt`` (see :func:`record`); the test runs the one-process reference
in its own process with :func:`scenario_overrides` (``world=1``) and compares.
"""
import json
import re
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from cotrain_helpers import overrides  # noqa: E402
from longrm.cotrain.trainer import CoTrainer  # noqa: E402
from longrm.scorers.spark import TASK_MARK  # noqa: E402

G, P_PER_RANK, STEPS = 4, 2, 3


def scenario_overrides(name: str, policy: Path, out: Path, world: int) -> list[str]:
    """Overrides of one scenario; ``world`` processes of P_PER_RANK·2/world prompts each (global batch: 2·P_PER_RANK)."""
    per_rank = P_PER_RANK * 2 // world
    common = {"grpo.num_generations": G, "grpo.prompts_per_step": per_rank, "train.max_steps": STEPS,
              "train.lr": "1e-4", "scorer.rule.mode": "exact", "grpo.max_completion_length": 8}
    if name == "cooper":
        # raw RM scores, advantages not divided by the group std: the tiny RM's scores inside a group are ~1e-3
        # apart, so with σ(s) and std scaling a 1-ulp score difference (batching order) moves the loss by ~1e-4
        # relative; here the loss is a well-conditioned function of the RM scores
        extra = {"scorer.name": "longrm", "scorer.longrm.update": "true", "scorer.longrm.update_lr": "1e-4",
                 "scorer.longrm.sigmoid": "false", "grpo.scale_rewards": "none"}
    elif name == "hero":  # HERO over the online-updated RM (the quickstart's co-training setup)
        extra = {"scorer.name": "hero", "scorer.longrm.update": "true", "scorer.longrm.update_lr": "1e-4",
                 "scorer.hero.alpha": 0.1, "scorer.hero.beta": 0.1}
    elif name == "spark":
        # 4 global groups; k = 3 injected groups per step: global groups 3, 2 (rank 1) and 1 (rank 0)
        extra = {"scorer.name": "spark", "scorer.spark.inject_fraction": 0.75, "scorer.spark.p_pointwise": 0.5}
    elif name == "spark_mix":  # + reflection tasks, injected mix pointwise : pairwise : reflection = 1 : 1 : 2
        extra = {"scorer.name": "spark", "scorer.spark.inject_fraction": 0.75, "scorer.spark.p_pointwise": 0.5,
                 "scorer.spark.reflection": "true",
                 "scorer.spark.task_ratios": "{pointwise: 1, pairwise: 1, reflection: 2}"}
    else:
        raise ValueError(name)
    return overrides(policy, out, **common, **extra)


def canned(prompt: str, j: int) -> str:
    """Rollout j of a prompt.  ``What is a + b?``: by c = (5a + b) mod 4, all right (0), all wrong (1) or mixed
    (rollout j right iff j + c is even).  Right: ``a + b``; wrong: ``I think {a + b + 1 + j}`` (longer, so the
    token-level policy loss is not 0).  A judge task: Yes/No or A/B by a hash; a reflection task: the question's
    right or wrong answer by a hash."""
    if TASK_MARK in prompt and "is incorrect" not in prompt:
        opts = ("Yes", "No") if "Proposed answer" in prompt else ("A", "B")
        return opts[(zlib.crc32(prompt.encode()) + j) % 2]
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", prompt).groups())
    c = (5 * a + b) % 4
    right = c == 0 or (c >= 2 and (j + c) % 2 == 0)
    if TASK_MARK in prompt:  # reflection
        right = (zlib.crc32(prompt.encode()) + j) % 2 == 0
    return str(a + b) if right else f"I think {a + b + 1 + j}"


class Canned(CoTrainer):
    """CoTrainer with :func:`canned` rollouts, recording each generation batch and each hook call."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.gens, self.updates, self.emitted = [], [], []
        for hook, log in (("update", self.updates), ("emit_tasks", self.emitted)):
            fn = getattr(self.scorer, hook, None)
            if callable(fn):
                def wrapped(batch, fn=fn, log=log):
                    res = fn(batch)
                    log.append(res)
                    return res

                setattr(self.scorer, hook, wrapped)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tok = self.processing_class
        out = []
        for i, ids in enumerate(prompt_ids):  # each prompt's G rows are next to each other
            text = tok.decode(ids, skip_special_tokens=True)
            out.append(list(tok(canned(text, i % num_generations), add_special_tokens=False)["input_ids"])
                       + [self.eos_token_ids[0]])
        return out, None

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.gens.append({"samples": [[s.prompt, s.completion, s.answer] for s in self.scorer_reward.last_samples],
                          "scores": self.last_batch["scores"].tolist(),
                          "rule": self.last_batch["rule_scores"].tolist()})
        return out


def record(tr, out: Path, tag: str) -> None:
    """``<tag>.json``: per step the local samples, the global scores and rule scores, the hook results, the logged
    loss; ``<tag>.pt``: the final policy and (if any) RM weights."""
    rm = getattr(getattr(tr.scorer, "rm", tr.scorer), "model", None)
    loss = [r["loss"] for r in tr.state.log_history if "loss" in r and "train_runtime" not in r]
    (out / f"{tag}.json").write_text(json.dumps({"gens": tr.gens, "updates": tr.updates, "emitted": tr.emitted,
                                                 "loss": loss, "world": tr.dp.size, "rank": tr.dp.rank}))
    weights = {"policy": {k: v.detach().clone() for k, v in tr.accelerator.unwrap_model(tr.model).state_dict().items()}}
    if rm is not None:
        weights["rm"] = {k: v.detach().clone() for k, v in rm.state_dict().items()}
    torch.save(weights, out / f"{tag}.pt")


def run(name: str, policy: Path, out: Path, world: int, tag: str) -> None:
    from longrm.config import load_config
    from longrm.cotrain.run import CotrainConfig, run_cotrain

    cfg = load_config(CotrainConfig, None, scenario_overrides(name, policy, out, world))
    tr = run_cotrain(cfg, trainer_cls=Canned)
    record(tr, out, tag)


def main():
    import os

    policy, base = Path(sys.argv[1]), Path(sys.argv[2])
    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    for name in sys.argv[3:]:
        run(name, policy, base / name, world, f"rank{rank}")


if __name__ == "__main__":
    main()
