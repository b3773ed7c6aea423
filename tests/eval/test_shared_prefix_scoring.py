"""The local eval backends read a sample's shared prompt once (KV cache): the DisRM's rewards equal one full forward
per candidate, in batches of one or several (right-padded) suffixes; the generative judge's greedy judgements equal
the ones generated from scratch."""
import pytest
import torch

from longrm.config import ModelConfig

CONTEXT = " ".join(f"Passage {i}: the access code of locker {i} is {100 + 7 * i}." for i in range(40))
OTHER_CONTEXT = " ".join(f"Passage {i}: the access code of locker {i} is {100 + 7 * i}." for i in reversed(range(40)))


def _convs(question: str, answers: list[str], context: str = CONTEXT) -> list[list[dict]]:
    prompt = [{"role": "user", "content": f"{context}\n\n{question}"}]
    return [prompt + [{"role": "assistant", "content": a}] for a in answers]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_shared_prefix_rewards_equal_separate_forwards(tiny_model_dir, batch_size):
    from longrm.eval.backends import LocalScorer

    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    convs = (_convs("What is the access code of locker 7?", ["It is 149.", "Probably 194, or maybe 419.", "No idea.",
                                                             "The code of locker 7 is 149, as passage 7 says."])
             + _convs("What is the code of locker 3?", ["121."], context="Locker 3: 121.")  # alone: the plain path
             + _convs("What is the code of locker 2?", ["114.", "141."], context=OTHER_CONTEXT))
    torch.manual_seed(0)
    shared = LocalScorer(mc, batch_size=batch_size, device="cpu")
    plain = LocalScorer(mc, batch_size=1, device="cpu", share_prefix=False)
    plain.model.load_state_dict(shared.model.state_dict())  # the same fresh head
    calls = []
    orig = shared._score_shared
    shared._score_shared = lambda ids, idx, n, out: (calls.append((list(idx), n)), orig(ids, idx, n, out))
    got, want = shared.score(convs), plain.score(convs)
    assert [c[0] for c in calls] == [[0, 1, 2, 3], [5, 6]]
    assert all(n > 400 for _, n in calls)  # the context is shared, not re-read per candidate
    assert got == pytest.approx(want, abs=1e-4)
    assert len(set(round(x, 4) for x in want)) > 3  # distinct rewards: the comparison is not vacuous


def test_fresh_head_before_row_is_reproducible(tiny_model_dir):
    """A base model has no trained score head; the eval's fresh head is seeded (judge.seed), so the "before"
    row of a DisRM is the same every run (it was not: 46.7% one run, 51.1% the next)."""
    from longrm.eval.pipeline import EvalConfig, _backend

    cfg = EvalConfig.model_validate({"model": {"name_or_path": str(tiny_model_dir), "dtype": "float32"},
                                     "data": {"path": "x.jsonl"}, "judge": {"mode": "discriminative",
                                                                            "device": "cpu"}})
    convs = _convs("What is the code of locker 2?", ["114.", "141."])
    a = _backend(cfg)["score"](convs)
    torch.manual_seed(123)  # whatever the global state before
    b = _backend(cfg)["score"](convs)
    assert a == b


def test_shared_prefix_generation_equals_plain(tiny_model_dir):
    """Pointwise prompts of one sample differ only after the context: prefilled once, each candidate's greedy
    judgement equals the one generated from scratch."""
    from longrm.data.tokenize import encode_prompt
    from longrm.eval.backends import LocalGenerator, _prefix_groups
    from longrm.judging.prompts import pointwise_messages

    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    q = "What is the access code of locker 7?"
    convs = [pointwise_messages(CONTEXT, q, a) for a in ("It is 149.", "Probably 194.", "No idea at all.")]
    convs.append(pointwise_messages("A short unrelated passage.", "Who?", "Nobody."))
    shared = LocalGenerator(mc, max_new_tokens=12, device="cpu", share_prefix=True)
    plain = LocalGenerator(mc, max_new_tokens=12, batch_size=4, device="cpu")
    ids = [shared.truncation(encode_prompt(shared.tok, c)) for c in convs]
    groups = _prefix_groups(ids, shared.min_shared_tokens)
    assert [g[0] for g in groups] == [[0, 1, 2]] and groups[0][1] > 400
    got, want = shared.generate(convs), plain.generate(convs)
    assert got == want and all(want)
