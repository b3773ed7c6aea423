"""rubric scorer (REFERENCE §4): weighted yes/no criteria, missing = no, one retry at a higher temperature."""
import json

import pytest

from longrm.config import ModelConfig
from longrm.scorers import RubricSection, ScorerConfig, build_scorer
from longrm.scorers.base import Sample
from longrm.scorers.rubric import RubricScorer, parse_verdicts, rubric_messages, rubric_reward, validate_rubric

RUBRIC = [{"criterion": "States the final number", "weight": 3}, {"criterion": "Shows the working", "weight": 1},
          {"criterion": "Is polite", "weight": 2}]


class Judge:
    """Answers from a queue and records (conversation, temperature) of every request."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def generate(self, convs, temperature=0.0):
        self.calls += [(c, temperature) for c in convs]
        return [self.answers.pop(0) for _ in convs]


def test_parse_and_reward_by_hand():
    assert parse_verdicts('{"c1": "yes", "c2": "no"}', 3) == [True, False, False]  # c3 missing -> no
    assert parse_verdicts('thinking {"x": 1} ... final: {"C1": "Yes", "c2": true, "c3": "maybe"}', 3) == [True, True, False]
    assert parse_verdicts("no json here", 2) is None and parse_verdicts('{"c1": "yes"', 1) is None
    assert parse_verdicts(None, 1) is None
    assert rubric_reward([True, False, False], [3, 1, 2]) == pytest.approx(3 / 6)
    assert rubric_reward([False, True, True], [3, 1, 2]) == pytest.approx(3 / 6)
    assert rubric_reward([True, True, True], [3, 1, 2]) == 1.0
    with pytest.raises(ValueError):
        validate_rubric([{"criterion": "", "weight": 1}])
    with pytest.raises(ValueError):
        validate_rubric([{"criterion": "x", "weight": 0}])
    assert validate_rubric([{"criterion": " x "}]) == [{"criterion": "x", "weight": 1.0}]


def test_scores_missing_and_one_retry():
    s1 = Sample("What is 2+2?", "4, because 2+2=4.", rubric=RUBRIC)
    s2 = Sample("What is 3+3?", "6", rubric=RUBRIC[:2])
    s3 = Sample("What is 1+1?", "two")
    judge = Judge(['{"c1": "yes", "c2": "yes"}', "garbage", "garbage",   # first attempt: s1 ok, s2 and s3 fail
                   '{"c1": "yes", "c2": "no"}', "still garbage"])        # retry: s2 ok, s3 fails again
    sc = RubricScorer(judge, criteria=[{"criterion": "Answers in words", "weight": 2}], retry_temperature=0.9)
    out = sc.score([s1, s2, s3])
    assert out == pytest.approx([(3 + 1) / 6, 3 / 4, 0.0])
    assert [t for _, t in judge.calls] == [0.0, 0.0, 0.0, 0.9, 0.9]  # retried once, at the higher temperature
    assert sc.retries == 2 and sc.parse_failures == 1
    user = judge.calls[0][0][1]["content"]
    assert "c1 (weight 3): States the final number" in user and "c3 (weight 2): Is polite" in user
    assert "4, because 2+2=4." in user and "JSON" in judge.calls[0][0][0]["content"]
    assert "c1 (weight 2): Answers in words" in judge.calls[2][0][1]["content"]  # s3 used the default rubric
    with pytest.raises(ValueError, match="rubric"):
        RubricScorer(judge).score([Sample("q", "a")])
    assert json.loads('{"c1": "yes"}')  # the format the system prompt asks for is valid JSON
    assert rubric_messages(s1, validate_rubric(RUBRIC))[0]["role"] == "system"


def test_real_tiny_judge(tiny_model_dir):
    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    sc = build_scorer(ScorerConfig(name="rubric", rubric=RubricSection(judge=mc, max_new_tokens=6, device="cpu",
                                                                       criteria=RUBRIC)))
    out = sc.score([Sample("What is 2+2?", "4"), Sample("What is 3+3?", "7")])
    # a random-init judge writes no JSON: both samples are retried once, then score 0 (every criterion "no")
    assert out == [0.0, 0.0] and sc.retries == 2 and sc.parse_failures == 2


def test_prompt_rows_keep_rubric(tmp_path):
    from longrm.cotrain.prompts import load_prompt_rows
    from longrm.cotrain.trainer import to_samples

    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "Say hi", "answer": None, "rubric": RUBRIC[:1]}) + "\n")
    rows = load_prompt_rows(str(p))
    assert rows == [{"prompt": [{"role": "user", "content": "Say hi"}], "answer": None,
                     "rubric": [{"criterion": "States the final number", "weight": 3.0}]}]
    s = to_samples([rows[0]["prompt"]] * 2, ["hi", "hello"], 2, [None, None], None, [rows[0]["rubric"]] * 2)
    assert s[1].rubric == rows[0]["rubric"] and s[1].prompt == "Say hi" and s[1].group == 0
