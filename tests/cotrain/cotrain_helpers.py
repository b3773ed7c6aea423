"""Helpers for the co-training tests: a warm-started tiny policy that solves some arithmetic prompts, configs."""
from __future__ import annotations

import math
from pathlib import Path

import torch

SPEC = "arithmetic:n=25,seed=0,max=4,ops=+"  # every a + b with a, b in 0..4 (25 distinct prompts), answers 0..8


def warm_start_policy(tiny_model_dir: Path, out: Path, spec: str = SPEC, steps: int = 150, seed: int = 0) -> Path:
    """Supervised warm start of the tiny random-init policy on ``spec``'s answers (plain masked-CE loop), so that
    sampled rollouts are right part of the time and the verifier's reward varies inside prompt groups."""
    from longrm.cotrain.warmstart import warm_start_policy as warm

    return warm(tiny_model_dir, out, spec, steps=steps, seed=seed)


def overrides(policy: Path, out: Path, **extra) -> list[str]:
    """Command-line style overrides of a short CPU co-training run of ``policy`` on :data:`SPEC`."""
    base = {"model.name_or_path": str(policy), "model.dtype": "float32", "model.gradient_checkpointing": "false",
            "grpo.num_generations": "8", "grpo.prompts_per_step": "4", "grpo.max_completion_length": "4",
            "grpo.beta": "0", "train.output_dir": str(out), "train.seed": "0", "data.path": SPEC,
            "scorer.longrm.model.name_or_path": str(policy), "scorer.longrm.model.dtype": "float32",
            "scorer.longrm.model.gradient_checkpointing": "false", "scorer.longrm.mode": "discriminative",
            "scorer.longrm.device": "cpu"}
    base.update({k: str(v) for k, v in extra.items()})
    out_args = []
    for k, v in base.items():
        out_args += [f"--{k}", v]
    return out_args


def answer_logprob(model_dir: Path, spec: str = SPEC) -> float:
    """Mean over the prompts of log π(answer + end-of-turn | prompt): exact, no sampling."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from longrm.cotrain.prompts import load_prompt_rows

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    total, rows = 0.0, load_prompt_rows(spec)
    for r in rows:
        p = tok.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
        p = list(p["input_ids"] if hasattr(p, "keys") else p)
        a = tok(r["answer"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + a])
        with torch.no_grad():
            lp = m(input_ids=ids).logits[0, len(p) - 1:-1].log_softmax(-1)
        total += lp.gather(-1, torch.tensor(a)[:, None]).sum().item()
    return total / len(rows)


def hand_hero_advantages(rm, rule, G, alpha, beta, eps, w_min, w_max, k, m, sigma_bar):
    """REFERENCE §3 + TRL's group-normalised advantages, written out with plain Python loops."""
    n = len(rm)
    adv, sig_u = [0.0] * n, []
    r_hat = [0.0] * n
    for g0 in range(0, n, G):
        idx = list(range(g0, g0 + G))
        for correct in (0, 1):
            s = [i for i in idx if rule[i] == correct]
            if not s:
                continue
            base, a = (1 - beta, beta) if correct else (-alpha, alpha)
            lo, hi = min(rm[i] for i in s), max(rm[i] for i in s)
            for i in s:
                r_hat[i] = base if len(s) == 1 else base + 2 * a * (rm[i] - lo) / (hi - lo + eps)
        mean_rm = sum(rm[i] for i in idx) / G
        sig_u.append(math.sqrt(sum((rm[i] - mean_rm) ** 2 for i in idx) / G))
    bar = sum(sig_u) / len(sig_u) if sigma_bar is None else sigma_bar
    for gi, g0 in enumerate(range(0, n, G)):
        idx = list(range(g0, g0 + G))
        mean = sum(r_hat[i] for i in idx) / G
        std = math.sqrt(sum((r_hat[i] - mean) ** 2 for i in idx) / (G - 1))  # TRL: Bessel-corrected
        w = w_min + (w_max - w_min) / (1 + math.exp(-k * (sig_u[gi] - bar)))
        for i in idx:
            adv[i] = (r_hat[i] - mean) / (std + 1e-4) * w
    new_bar = sum(sig_u) / len(sig_u) if sigma_bar is None else m * sigma_bar + (1 - m) * sum(sig_u) / len(sig_u)
    return adv, new_bar


def batch_keys(batch: dict) -> list[tuple]:
    """(prompt ids, completion ids) of each row of a GRPO batch, padding removed: a rollout's identity."""
    def key(ids, mask):
        return tuple(ids[mask.bool()].tolist())

    return [(key(batch["prompt_ids"][i], batch["prompt_mask"][i]), key(batch["completion_ids"][i], batch["completion_mask"][i]))
            for i in range(batch["prompt_ids"].shape[0])]


def recording_trainer():
    """A CoTrainer that records each generation batch (``gens``: keys, scores, rule scores, in generation order)
    and each loss call's (shuffled) inputs (``losses``: keys, advantages) and logs ``"loss"`` in ``events``."""
    from longrm.cotrain.trainer import CoTrainer

    class Record(CoTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            self.__dict__.setdefault("gens", []).append(dict(keys=batch_keys(out), scores=self.last_batch["scores"].clone(),
                                                             rule=self.last_batch["rule_scores"].clone()))
            return out

        def _compute_loss(self, model, inputs):
            self.__dict__.setdefault("losses", []).append((batch_keys(inputs), inputs["advantages"].detach().clone()))
            self.__dict__.setdefault("events", []).append("loss")
            return super()._compute_loss(model, inputs)

    return Record
