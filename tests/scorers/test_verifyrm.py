"""VerifyRM pre-training data (REFERENCE §2): verdict parsing, the arithmetic source, hybrid annotation (agreements
kept) against a hand-worked case, file rows, and the training input = the co-training scorer's input."""
import json

import pytest
import torch

from longrm.config import ModelConfig
from longrm.cotrain.prompts import arithmetic_rows
from longrm.scorers.longrm_rm import LongRMScorer, verify_text
from longrm.scorers.rule import RuleScorer
from longrm.scorers.verifyrm import (JUDGE_SYSTEM, VerifyRow, arithmetic_verify_rows, hybrid_annotate, load_verify_rows,
                                     parse_verdict, parse_verify_spec, read_rows, tokenize_verify, write_rows)


class ScriptedJudge:
    """Answers each conversation with the next scripted text; records the conversations and temperatures."""

    def __init__(self, texts):
        self.texts, self.seen, self.temperatures = list(texts), [], []

    def generate(self, convs, temperature=0.0):
        self.temperatures.append(temperature)
        self.seen.extend(convs)
        out, self.texts = self.texts[:len(convs)], self.texts[len(convs):]
        return out


def test_parse_verdict():
    assert parse_verdict("Yes.") == 1 and parse_verdict("no, it is 8") == 0 and parse_verdict("  YES") == 1
    assert parse_verdict("I would say yes") == 1 and parse_verdict("Yes or no? No.") == 1  # the first one counts
    assert parse_verdict("Nobody knows; yesterday") is None  # whole words only
    assert parse_verdict("The answer is") is None and parse_verdict(None) is None and parse_verdict(3) is None


def test_hybrid_annotation_by_hand():
    """Six rows, labelled by hand: rule (exact: last number / "answer is") and judge; the agreements are kept."""
    q = "What is 3 + 4? Answer with the number only."
    rows = [VerifyRow(q, "7", "7", "a"),                              # rule 1, judge Yes -> kept, 1
            VerifyRow(q, "7", "8", "b"),                              # rule 0, judge No  -> kept, 0
            VerifyRow(q, "7", "It is 7 or 8.", "c"),                  # rule 0, judge Yes -> disagreed (rule 0)
            VerifyRow(q, "7", "The answer is 7.", "d"),               # rule 1, judge No  -> disagreed (rule 1)
            VerifyRow(q, "7", "7", "e"),                              # rule 1, judge ?   -> unparsed
            VerifyRow(q, "7", "3 + 4 = 6. The answer is 6.", "f")]    # rule 0, judge no  -> kept, 0
    judge = ScriptedJudge(["Yes", "No.", "yes, 7 is there", "No", "It depends", "no"])
    kept, every, rep = hybrid_annotate(rows, RuleScorer("exact"), judge, batch_size=4)
    assert [r.id for r in kept] == ["a", "b", "f"] and [r.label for r in kept] == [1, 0, 0]
    assert [(r.rule_label, r.judge_label) for r in every] == [(1, 1), (0, 0), (0, 1), (1, 0), (1, None), (0, 0)]
    assert all(r.label is None for r in every if r.id in "cde")
    d = rep.to_dict()
    assert (d["total"], d["kept"], d["disagreed"], d["judge_unparsed"]) == (6, 3, 2, 1)
    assert d["kept_by_label"] == {"1": 1, "0": 2} and d["disagreed_by_rule_label"] == {"1": 1, "0": 1}
    assert d["rule_by_label"] == {"1": 3, "0": 3} and d["judge_by_label"] == {"1": 2, "0": 3}
    assert d["agreement"] == pytest.approx(3 / 5)
    # the judge saw each row's question, reference and response, greedily, in two calls of <= 4
    assert judge.temperatures == [0.0, 0.0] and len(judge.seen) == 6
    assert judge.seen[2][0]["content"] == JUDGE_SYSTEM
    assert "[Reference Answer]\n7\n\n[Response]\nIt is 7 or 8.\n" in judge.seen[2][1]["content"] and q in judge.seen[2][1]["content"]


def test_arithmetic_source():
    spec = parse_verify_spec("arithmetic-verify:n=20,seed=3,max=6,k=3,long_right=1,long_wrong=0,hedge=0.2")
    assert spec == {"n": 20, "seed": 3, "max": 6, "ops": "+", "k": 3, "right": 0.5, "long_right": 1.0,
                    "long_wrong": 0.0, "hedge": 0.2}
    rows = arithmetic_verify_rows(**spec)
    assert len(rows) == 60
    # the questions are exactly the co-training prompts of the same arithmetic spec
    prompts = [r["prompt"][0]["content"] for r in arithmetic_rows(n=20, seed=3, max=6, ops="+")]
    assert [r.question for r in rows[::3]] == prompts
    rule = RuleScorer("exact")
    for r in rows:
        assert r.meta["correct"] == int(rule.check(r.response, r.reference))  # correct by construction = verifier
        if r.meta["style"] != "hedge":  # long exactly when right (long_right=1, long_wrong=0)
            assert (r.meta["style"] == "long") == bool(r.meta["correct"])
        else:
            assert r.response.startswith("It is ") and r.reference in r.response
    assert {r.meta["style"] for r in rows} == {"short", "long", "hedge"}
    assert load_verify_rows("arithmetic-verify:n=20,seed=3,max=6,k=3,long_right=1,long_wrong=0,hedge=0.2", limit=5) == rows[:5]
    with pytest.raises(ValueError, match="unknown key"):
        parse_verify_spec("arithmetic-verify:nn=3")


def test_file_rows_and_round_trip(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "x", "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "What is 1 + 1?"}],
         "answer": 2, "responses": ["2", "3"]},
        {"question": "What is 2 + 2?", "reference": "4", "response": "4", "label": 1}]) + "\n")
    rows = load_verify_rows(str(src))
    assert [(r.id, r.question, r.reference, r.response, r.label) for r in rows] == [
        ("x-r0", "What is 1 + 1?", "2", "2", None), ("x-r1", "What is 1 + 1?", "2", "3", None),
        ("1", "What is 2 + 2?", "4", "4", 1)]
    out = write_rows(rows, tmp_path / "out.jsonl")
    first = json.loads(out.read_text().splitlines()[0])
    assert first["text"] == verify_text(rows[0].sample())
    assert read_rows(out) == rows
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "reference": "1"}) + "\n")
    with pytest.raises(ValueError, match="row 0: needs 'response'"):
        load_verify_rows(str(bad))


def test_training_input_is_the_scorer_input(tiny_model_dir):
    """The pre-training example of a row is the token sequence LongRMScorer(input_format="verify") scores, and the
    stage's reward (branch_rewards at the last token, packed, LongRM attention) equals the scorer's score."""
    from longrm.data.layout import pack
    from longrm.models import load_seq_cls
    from longrm.modeling import branch_rewards, prepare_model
    from longrm.parallel import ParallelContext

    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    torch.manual_seed(0)
    scorer = LongRMScorer(mc, mode="discriminative", input_format="verify", device="cpu")
    rows = [VerifyRow("What is 3 + 4? Answer with the number only.", "7", t, str(i), label=i % 2)
            for i, t in enumerate(["7", "The answer is 8.", "x" * 2000])]  # the last one is cut head 500 + tail 1000
    vs = tokenize_verify(rows, scorer.tok, max_length=4096)
    assert vs.labels == [0, 1, 0] and not vs.skipped
    for ex, r in zip(vs.examples, rows):
        assert ex.input_ids == scorer._encode(r.sample()) and ex.last_index == [len(ex.input_ids) - 1]
    model = load_seq_cls(mc)
    model.score.load_state_dict(scorer.model.score.state_dict())  # same fresh head as the scorer's copy
    model = prepare_model(model.eval(), ParallelContext.single(), kernel="torch")
    with torch.no_grad():
        staged = branch_rewards(model, pack(vs.examples), ParallelContext.single())
        direct = scorer.raw_scores([r.sample() for r in rows])
    assert torch.allclose(staged, direct, atol=1e-5), (staged, direct)
    # over-long rows: head + tail kept, skipped or refused, counted
    assert tokenize_verify(rows, scorer.tok, max_length=48).skipped["truncated_head_tail"] == 3
    assert len(tokenize_verify(rows, scorer.tok, max_length=48, truncation="skip")) == 0
    assert tokenize_verify([VerifyRow("q", "1", "1")], scorer.tok, 64).skipped["no_label"] == 1
