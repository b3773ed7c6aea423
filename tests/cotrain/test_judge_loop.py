"""The generative LongRM and the rubric judge as the loop's scorer (tiny random-init judges: every output fails to
parse, so every reward is the configured fallback and the failures are logged per step)."""
import json

import pytest

from cotrain_helpers import overrides
from longrm.config import load_config
from longrm.cotrain.run import CotrainConfig, run_cotrain


@pytest.mark.parametrize("scorer", ["longrm", "rubric"])
def test_judge_scorer_in_the_loop(scorer, warm_policy, tiny_model_dir, tmp_path):
    out = tmp_path / scorer
    extra = {"scorer.name": scorer, "grpo.num_generations": 4, "grpo.prompts_per_step": 2, "train.max_steps": 2,
             "scorer.longrm.mode": "generative", "scorer.longrm.max_new_tokens": 4, "scorer.longrm.default_score": 0.3,
             "scorer.rubric.judge.name_or_path": str(tiny_model_dir), "scorer.rubric.judge.dtype": "float32",
             "scorer.rubric.max_new_tokens": 4, "scorer.rubric.device": "cpu",
             "scorer.rubric.criteria": '[{"criterion": "gives the sum", "weight": 2}]'}
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, out, **extra))
    run_cotrain(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "reward" in json.loads(x)]
    assert [r["step"] for r in rows] == [1, 2]
    want = 0.3 if scorer == "longrm" else 0.0
    for r in rows:
        assert r["reward"] == pytest.approx(want, abs=1e-6) and r["reward_std"] == pytest.approx(0.0, abs=1e-6)
        assert r["scorer/parse_failures"] == 8  # every one of the 2 x 4 rollouts of the step
        assert 0 <= r["rewards/rule/mean"] <= 1  # the verifier is still logged beside the judge's reward
        if scorer == "rubric":
            assert r["scorer/retries"] == 8  # each failed once, was asked again, failed again
