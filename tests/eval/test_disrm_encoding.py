"""A DisRM is scored where it was trained: the eval backend's reward for (prompt, answer) equals the training
path's (shared-context row, ``branch_rewards`` at each branch's last token) for the same record."""
import pytest
import torch

from longrm.config import DataConfig, ModelConfig


def test_eval_reward_is_the_training_reward(tiny_model_dir):
    from longrm.data.layout import pack
    from longrm.data.prepare import tokenize_preference
    from longrm.data.tokenize import encode_scored
    from longrm.eval.backends import LocalScorer
    from longrm.models import load_seq_cls
    from longrm.modeling import branch_rewards, prepare_model
    from longrm.parallel import ParallelContext
    from longrm.records import PreferenceRecord

    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    prompt = [{"role": "user", "content": "Passage 1: The access code of the vault is 718.\n\nWhat is the access "
                                          "code of the vault?"}]
    answers = ["It is 718.", "I think it might be 178, but I am not sure.", "Codes are interesting."]
    rec = PreferenceRecord(prompt=prompt, chosen=answers[0], rejected=answers[1:], id="r0")
    torch.manual_seed(0)
    scorer = LocalScorer(mc, batch_size=2, device="cpu")
    convs = [prompt + [{"role": "assistant", "content": a}] for a in answers]
    # the encoding ends at the completion's EOS, the token whose reward the DisRM trained on
    tok = scorer.tok
    for c in convs:
        ids = encode_scored(tok, c)
        assert ids[-1] == tok.eos_token_id and tok.decode(ids).rstrip().endswith(c[-1]["content"] + tok.eos_token)
    got = scorer.score(convs)

    ts = tokenize_preference([rec], tok, DataConfig(path="x", max_length=4096), num_rejects=2)
    model = load_seq_cls(mc)
    model.score.load_state_dict(scorer.model.score.state_dict())  # the same fresh head
    model = prepare_model(model.eval(), ParallelContext.single(), kernel="torch")
    with torch.no_grad():
        trained = branch_rewards(model, pack(ts.examples), ParallelContext.single())
    assert trained.tolist() == pytest.approx(got, abs=1e-5)
    with pytest.raises(ValueError, match="assistant"):
        encode_scored(tok, prompt)
