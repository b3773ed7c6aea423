"""The local transformers judge with the tiny model (resolve_model_path("tiny:qwen2"))."""
import pytest

from data_synthesis.config import JudgeConfig
from data_synthesis.judges import JudgeRequest, build_judge
from data_synthesis.tasks import Task, task_votes
from data_synthesis.sources import SourceExample
from data_synthesis.vote import vote
from longrm.judging.prompts import pointwise_messages


@pytest.fixture(scope="module")
def judge():
    cfg = JudgeConfig.model_validate({"name": "tiny", "backend": "hf", "samples": 2, "temperature": 1.0,
                                      "max_new_tokens": 12, "batch_size": 2,
                                      "model": {"name_or_path": "tiny:qwen2", "dtype": "float32"}})
    return build_judge(cfg)


def test_batched_generate_returns_n_samples(judge):
    reqs = [JudgeRequest(pointwise_messages(f"context {i} " * (1 + 5 * i), "What?", "An answer."), key=str(i))
            for i in range(3)]
    out = judge.judge(reqs, n=2)
    assert len(out) == 3 and all(len(js) == 2 for js in out)
    assert all(isinstance(j.text, str) and j.error is None for js in out for j in js)
    # the random tiny model writes no [Score: N]: every vote is a parse failure, and voting says so
    ex = SourceExample("e", "What?", "ctx", ["An answer."])
    task = Task("t", "pointwise", ex, [0], reqs[0].messages, [reqs[0]])
    values, fails, texts = task_votes(task, [out[0]])
    assert values == [-1, -1] and fails == ["parse_failure", "parse_failure"]
    assert vote(values).reason == "too_few_valid"


def test_long_prompt_is_refused_not_run(judge):
    judge.max_prompt_tokens = 40
    try:
        out = judge.judge([JudgeRequest(pointwise_messages("word " * 200, "q", "r"))], n=2)
    finally:
        judge.max_prompt_tokens = None
    assert [j.text for j in out[0]] == [None, None] and "too long" in out[0][0].error


def test_greedy_needs_one_sample(judge):
    judge.temperature = 0.0
    try:
        with pytest.raises(ValueError):
            judge.judge([JudgeRequest(pointwise_messages("c", "q", "r"))], n=2)
        out = judge.judge([JudgeRequest(pointwise_messages("c", "q", "r"))], n=1)
        assert isinstance(out[0][0].text, str)
    finally:
        judge.temperature = 1.0
