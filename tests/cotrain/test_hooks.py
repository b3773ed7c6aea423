"""The scorer hooks inside a real GRPO run: HERO's advantages reaching the loss (against a hand computation) and the
Cooper-order RM update (score → advantages → RM update → policy loss → policy step)."""
import json
import math

import pytest
import torch
from transformers import TrainerCallback

from cotrain_helpers import overrides
from longrm.config import load_config
from longrm.cotrain.run import CotrainConfig, run_cotrain
from longrm.cotrain.trainer import CoTrainer


def _key(ids, mask):
    return tuple(ids[mask.bool()].tolist())


class Record(CoTrainer):
    """Records each generation batch (in generation order) and each loss call's (shuffled) inputs."""

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        keys = [(_key(out["prompt_ids"][i], out["prompt_mask"][i]), _key(out["completion_ids"][i], out["completion_mask"][i]))
                for i in range(out["prompt_ids"].shape[0])]
        self.__dict__.setdefault("gens", []).append(
            dict(keys=keys, scores=self.last_batch["scores"].clone(), rule=self.last_batch["rule_scores"].clone()))
        return out

    def _compute_loss(self, model, inputs):
        keys = [(_key(inputs["prompt_ids"][i], inputs["prompt_mask"][i]),
                 _key(inputs["completion_ids"][i], inputs["completion_mask"][i])) for i in range(inputs["prompt_ids"].shape[0])]
        self.__dict__.setdefault("losses", []).append((keys, inputs["advantages"].detach().clone()))
        self.__dict__.setdefault("events", []).append("loss")
        return super()._compute_loss(model, inputs)


def _hand_hero(rm, rule, G, alpha, beta, eps, w_min, w_max, k, m, sigma_bar):
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


@pytest.mark.slow
def test_hero_advantages_reach_the_loss(warm_policy, tmp_path):
    G = 4
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, tmp_path / "hero", **{
        "scorer.name": "hero", "scorer.hero.alpha": 0.1, "scorer.hero.beta": 0.1, "grpo.num_generations": G,
        "grpo.prompts_per_step": 4, "train.max_steps": 4, "train.lr": "5e-4"}))
    torch.manual_seed(0)
    tr = run_cotrain(cfg, trainer_cls=Record)
    h = cfg.scorer.hero
    assert len(tr.gens) == len(tr.losses) == 4  # one generation batch per step (steps_per_generation = 1)
    bar, mixed, checked = None, 0, 0
    for gen, (keys, got) in zip(tr.gens, tr.losses):
        rm, rule = gen["scores"].tolist(), [int(x) for x in gen["rule"].tolist()]
        want, bar = _hand_hero(rm, rule, G, h.alpha, h.beta, h.eps, h.w_min, h.w_max, h.k, h.ema_momentum, bar)
        expected = {}
        for key, a in zip(gen["keys"], want):
            assert expected.get(key, a) == pytest.approx(a, abs=1e-5)  # identical rollouts get identical advantages
            expected[key] = a
        assert sorted(keys) == sorted(gen["keys"])  # the loss saw this batch (shuffled)
        for key, a in zip(keys, got.tolist()):
            assert a == pytest.approx(expected[key], abs=1e-4, rel=1e-4)
            checked += 1
        mixed += sum(0 < sum(rule[g:g + G]) < G for g in range(0, len(rule), G))
    assert checked == 4 * 16 and mixed > 0  # some prompt groups had both right and wrong rollouts
    assert tr.scorer.sigma_bar == pytest.approx(bar, rel=1e-5)
    rows = [json.loads(x) for x in (tmp_path / "hero" / "metrics.jsonl").read_text().splitlines()]
    assert all("hero/weight_mean" in r and r["hero/weight_mean"] != 1.0 for r in rows if "reward" in r)


class Events(TrainerCallback):
    def __init__(self, log):
        self.log = log

    def on_optimizer_step(self, args, state, control, **kw):
        self.log.append("policy_step")


@pytest.mark.slow
def test_rm_update_runs_in_cooper_order(warm_policy, tmp_path):
    out = tmp_path / "cooper"
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, out, **{
        "scorer.name": "longrm", "scorer.longrm.update": "true", "scorer.longrm.update_lr": "1e-3",
        "scorer.longrm.sigmoid": "true", "grpo.num_generations": 4, "grpo.prompts_per_step": 4,
        "train.max_steps": 4}))
    log: list[str] = []

    class Rec(Record):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.events = log
            rm, score, update = self.scorer, self.scorer.score, self.scorer.update
            rm0 = {k: v.clone() for k, v in rm.model.named_parameters()}
            self.rm0 = rm0

            def score_w(samples):
                log.append("score")
                return score(samples)

            def update_w(batch):
                log.append("update")
                # the policy's rewards came from the RM as it is *before* this update
                assert torch.tensor(score(batch.samples)) == pytest.approx(batch.scores, abs=1e-5)
                assert batch.advantages.shape == (16,) and batch.rule_scores.shape == (16,)
                res = update(batch)
                assert res["rm/pairs"] == 0 or torch.tensor(score(batch.samples)) != pytest.approx(batch.scores, abs=1e-6)
                self.__dict__.setdefault("updates", []).append(res)
                return res

            rm.score, rm.update = score_w, update_w

    torch.manual_seed(0)
    tr = run_cotrain(cfg, trainer_cls=Rec, callbacks=[Events(log)])
    assert log == ["score", "update", "loss", "policy_step"] * 4
    assert sum(u["rm/pairs"] for u in tr.updates) > 0  # real (right, wrong) pairs were found and trained on
    # the RM's weights moved; the policy optimizer never held them
    rm = tr.scorer
    assert any(not torch.equal(v, tr.rm0[k]) for k, v in rm.model.named_parameters())
    rm_ids = {id(p) for p in rm.model.parameters()}
    assert not rm_ids & {id(p) for grp in tr.optimizer.param_groups for p in grp["params"]}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("rm/loss", 0) > 0 for r in rows) and all(0 <= r["reward"] <= 1 for r in rows if "reward" in r)
    assert (out / "rm_final" / "model.safetensors").exists() and (out / "final" / "model.safetensors").exists()
