"""The DisRM eval scores a sample's candidates from one pass over their shared prompt (KV cache): the rewards
equal one full forward per candidate, in batches of one or several (right-padded) suffixes."""
import pytest
import torch

from longrm.config import ModelConfig

CONTEXT = " ".join(f"Passage {i}: the access code of locker {i} is {100 + 7 * i}." for i in range(40))


def _convs(question: str, answers: list[str]) -> list[list[dict]]:
    prompt = [{"role": "user", "content": f"{CONTEXT}\n\n{question}"}]
    return [prompt + [{"role": "assistant", "content": a}] for a in answers]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_shared_prefix_rewards_equal_separate_forwards(tiny_model_dir, batch_size):
    from longrm.eval.backends import LocalScorer

    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    convs = (_convs("What is the access code of locker 7?", ["It is 149.", "Probably 194, or maybe 419.", "No idea.",
                                                             "The code of locker 7 is 149, as passage 7 says."])
             + _convs("What is the code of locker 3?", ["121."])            # alone: the plain path
             + _convs("What is the code of locker 2?", ["114.", "141."]))
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
