"""A short GRPO run with the rule scorer on arithmetic really trains the policy (CPU, tiny warm-started policy)."""
import json
import re

import pytest
import torch
from safetensors.torch import load_file

from cotrain_helpers import SPEC, answer_logprob, overrides
from longrm.config import load_config
from longrm.cotrain.prompts import load_prompt_rows
from longrm.cotrain.run import CotrainConfig, run_cotrain
from longrm.cotrain.trainer import CoTrainer


class Capture(CoTrainer):
    """Records, per generation batch, the scored samples and the verifier's scores."""

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.__dict__.setdefault("captured", []).append(
            (list(self.scorer_reward.last_samples), self.last_batch["rule_scores"].clone()))
        return out


@pytest.mark.slow
def test_rule_scorer_run_trains(warm_policy, tmp_path):
    out = tmp_path / "run"
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, out, **{"scorer.name": "rule", "train.lr": "5e-4",
                                                                          "train.max_steps": "60"}))
    tr = run_cotrain(cfg, trainer_cls=Capture)
    answers = {r["prompt"][0]["content"]: r["answer"] for r in load_prompt_rows(SPEC)}

    # the verifier's scores are right: an integer completion scores 1 exactly when it is the sum
    n_int = n_all = n_right = 0
    for samples, rule in tr.captured:
        assert len(samples) == 32 and [s.group for s in samples] == [i // 8 for i in range(32)]
        for s, r in zip(samples, rule.tolist()):
            assert s.answer == answers[s.prompt]
            n_all += 1
            if re.fullmatch(r"\s*-?\d+\s*", s.completion):
                n_int += 1
                assert r == float(int(s.completion) == int(s.answer)), (s.completion, s.answer, r)
                n_right += r == 1.0
            elif not re.search(r"\d", s.completion):
                assert r == 0.0
    assert n_int > 0.5 * n_all and 0 < n_right < n_int  # mostly numbers; some right, some wrong

    # reward logged at every step; with the rule scorer it is the verifier's mean
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward" in r]
    assert [r["step"] for r in steps] == list(range(1, 61))
    assert all(r["reward"] == pytest.approx(r["rewards/rule/mean"]) and 0 <= r["reward"] <= 1 for r in steps)
    assert sum(r["reward"] for r in steps) / 60 > 0.2
    assert (out / "resolved_config.yaml").exists()

    # the policy's weights moved, and it puts more probability on the right answers than before
    before, after = load_file(str(warm_policy / "model.safetensors")), load_file(str(out / "final" / "model.safetensors"))
    assert sum(not torch.equal(before[k], after[k]) for k in before) >= len(before) // 2
    lp0, lp1 = answer_logprob(warm_policy), answer_logprob(out / "final")
    print("answer log-prob", lp0, lp1)
    assert lp1 > lp0 + 0.02, (lp0, lp1)
