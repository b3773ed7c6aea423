"""SPARK test time (REFERENCE §5): answer → self-judge → reflect; a scripted policy and the real tiny model."""
import json
import re

import pytest

from longrm.config import ModelConfig
from longrm.scorers.rule import RuleScorer
from longrm.scorers.spark import (TASK_MARK, pairwise_prompt, parse_pairwise, parse_pointwise, pointwise_prompt,
                                  reflection_prompt)
from longrm.scorers.spark_infer import (ReflectRecord, SparkInferConfig, reflection_report, run_spark_infer,
                                        self_judge_reflect)


class ScriptedPolicy:
    """Deterministic stand-in for the policy: answers, judgements and revisions from tables keyed by the question
    (and the answer shown).  Records every call (conversations, temperature)."""

    def __init__(self, answers, judge, revise, pair=None):
        self.answers, self.judge, self.revise, self.pair = answers, judge, revise, pair or {}
        self.calls, self.seen = [], {}

    def _reply(self, conv):
        text = conv[-1]["content"]
        if not text.startswith(TASK_MARK):
            k = self.seen.get(text, 0)
            self.seen[text] = k + 1
            return self.answers[text][k % len(self.answers[text])]
        q = re.search(r"Question: (.*)\n", text).group(1)
        if "Is the proposed answer correct?" in text:
            return self.judge[(q, re.search(r"Proposed answer: (.*)\n", text).group(1))]
        if "Exactly one answer is correct" in text:
            return self.pair[(q, re.search(r"\(A\) (.*)\n", text).group(1), re.search(r"\(B\) (.*)\n", text).group(1))]
        assert "The proposed answer is incorrect" in text
        return self.revise[(q, re.search(r"Proposed answer: (.*)\n", text).group(1))]

    def generate(self, convs, temperature=0.0):
        self.calls.append((list(convs), temperature))
        return [self._reply(c) for c in convs]


Q = {k: f"What is {k}?" for k in ("2 + 3", "1 + 1", "4 + 4", "3 + 3", "2 + 2", "5 + 5", "9 - 9")}
ROWS = [{"prompt": [{"role": "user", "content": Q["2 + 3"]}], "answer": "5"},   # judged wrong -> revised, right
        {"prompt": Q["1 + 1"], "answer": "2"},                                   # judged right -> kept
        {"prompt": Q["4 + 4"], "answer": "8"},                                   # unparsed judgement
        {"prompt": Q["3 + 3"], "answer": "6"},                                   # judged wrong again and again
        {"prompt": Q["2 + 2"], "answer": "4"},                                   # right, judged wrong -> spoiled
        {"prompt": Q["9 - 9"], "answer": None}]                                  # no reference: not in the accuracy


def _policy():
    return ScriptedPolicy(
        answers={Q["2 + 3"]: ["6"], Q["1 + 1"]: ["2"], Q["4 + 4"]: ["9"], Q["3 + 3"]: ["7"], Q["2 + 2"]: ["4"],
                 Q["9 - 9"]: ["0"]},
        judge={(Q["2 + 3"], "6"): "No", (Q["2 + 3"], "It is 5."): "Yes.",
               (Q["1 + 1"], "2"): "yes",
               (Q["4 + 4"], "9"): "maybe 42", (Q["4 + 4"], "8"): "Yes",
               (Q["3 + 3"], "7"): "No", (Q["3 + 3"], "5"): "no", (Q["3 + 3"], "4"): "The answer is No.",
               (Q["3 + 3"], "6"): "Yes",
               (Q["2 + 2"], "4"): "No", (Q["2 + 2"], "5"): "Yes",
               (Q["9 - 9"], "0"): "Yes"},
        revise={(Q["2 + 3"], "6"): "It is 5.", (Q["4 + 4"], "9"): "8", (Q["3 + 3"], "7"): "5", (Q["3 + 3"], "5"): "4",
                (Q["3 + 3"], "4"): "6", (Q["2 + 2"], "4"): "5"})


def _by_q(recs):
    return {r.question: r for r in recs}


def test_control_flow_exact():
    pol = _policy()
    recs = self_judge_reflect(pol, ROWS, max_rounds=2)
    r = _by_q(recs)
    assert [x.question for x in recs] == [Q[k] for k in ("2 + 3", "1 + 1", "4 + 4", "3 + 3", "2 + 2", "9 - 9")]
    # judged wrong -> one reflection, the revision (judged right) is the final answer
    a = r[Q["2 + 3"]]
    assert (a.answers, a.verdicts, a.chosen) == (["6"], ["No"], 0)
    assert (a.revisions, a.revision_verdicts, a.reflected, a.final) == (["It is 5."], ["Yes"], True, "It is 5.")
    # judged right -> kept, no reflection
    b = r[Q["1 + 1"]]
    assert (b.verdicts, b.revisions, b.reflected, b.final) == (["Yes"], [], False, "2")
    # unparsed judgement: kept (on_unparsed="keep")
    c = r[Q["4 + 4"]]
    assert (c.verdicts, c.reflected, c.final) == ([None], False, "9")
    # judged wrong, revisions judged wrong too: stops after max_rounds = 2, the last revision is final
    d = r[Q["3 + 3"]]
    assert (d.revisions, d.revision_verdicts, d.final) == (["5", "4"], ["No", "No"], "4")
    assert [j["round"] for j in d.judgements] == [0, 1, 2] and d.judgements[2]["text"] == "The answer is No."
    assert r[Q["2 + 2"]].final == "5" and r[Q["9 - 9"]].final == "0"
    # batched: answers, judgements, then per round revisions + judgements, each one call for all prompts
    sizes = [len(convs) for convs, _ in pol.calls]
    assert sizes == [6, 6, 3, 3, 1, 1]  # round 1: 2 + 3, 3 + 3, 2 + 2; round 2: 3 + 3 only
    assert [t for _, t in pol.calls] == [0.0] * 6
    # the prompts are the training-time task prompts (spark.py builders)
    assert pol.calls[1][0][0] == pointwise_prompt(Q["2 + 3"], "6")
    assert pol.calls[2][0][0] == reflection_prompt(Q["2 + 3"], "6")
    assert pol.calls[4][0][0] == reflection_prompt(Q["3 + 3"], "5")  # reflects on the latest revision
    assert pol.calls[0][0][1] == [{"role": "user", "content": Q["1 + 1"]}]  # a text prompt becomes a user turn
    d_dict = d.to_dict()
    assert d_dict["final"] == "4" and d_dict["reflected"] is True and json.loads(json.dumps(d_dict)) == d_dict


def test_round_limit_and_unparsed_rule():
    for rounds, want in [(0, []), (1, ["5"]), (2, ["5", "4"]), (3, ["5", "4", "6"]), (5, ["5", "4", "6"])]:
        d = _by_q(self_judge_reflect(_policy(), ROWS, max_rounds=rounds))[Q["3 + 3"]]
        assert d.revisions == want and d.final == (want[-1] if want else "7")
        assert d.reflected == bool(want)
    # on_unparsed="reflect": the unparsed verdict counts as No
    pol = _policy()
    c = _by_q(self_judge_reflect(pol, ROWS, max_rounds=1, on_unparsed="reflect"))[Q["4 + 4"]]
    assert (c.verdicts, c.revisions, c.revision_verdicts, c.final) == ([None], ["8"], ["Yes"], "8")
    with pytest.raises(ValueError, match="temperature"):
        self_judge_reflect(_policy(), ROWS, n_answers=2)
    with pytest.raises(ValueError):
        self_judge_reflect(_policy(), ROWS, on_unparsed="drop")


def test_several_answers_selection_and_pairwise():
    q = Q["5 + 5"]
    pol = ScriptedPolicy(answers={q: ["11", "10", "so 10", "12"]},
                         judge={(q, "11"): "Yes", (q, "10"): "Yes", (q, "so 10"): "yes", (q, "12"): "No"},
                         revise={}, pair={(q, "11", "10"): "B"})
    (r,) = self_judge_reflect(pol, [{"prompt": q, "answer": "10"}], n_answers=4, temperature=0.7, seed=3)
    assert r.answers == ["11", "10", "so 10", "12"] and r.verdicts == ["Yes", "Yes", "Yes", "No"]
    # 1 challenges 0 and wins (B); 2 has the same final answer as the champion 1: no call; 3 is judged No
    assert r.chosen == 1 and not r.reflected and r.final == "10"
    pairs = [j for j in r.judgements if j["kind"] == "pairwise"]
    assert pairs == [{"kind": "pairwise", "round": 0, "target": [0, 1], "text": "B", "verdict": "B"}]
    assert pol.calls[2][0] == [pairwise_prompt(q, "11", "10")] and len(pol.calls) == 3
    assert pol.calls[0][1] == 0.7 and pol.calls[1][1] == 0.0  # answers sampled, judge greedy
    # an A / unparsed pairwise verdict keeps the champion, which then meets the next challenger (2: "so 10");
    # pairwise off keeps the first best answer
    pol.pair[(q, "11", "so 10")] = "A"
    for reply in ("A", "hmm"):
        pol.pair[(q, "11", "10")] = reply
        pol.seen.clear()
        (r,) = self_judge_reflect(pol, [{"prompt": q, "answer": "10"}], n_answers=4, temperature=0.7)
        assert r.chosen == 0 and r.final == "11"
        assert [(j["target"], j["verdict"]) for j in r.judgements if j["kind"] == "pairwise"] == [
            ([0, 1], None if reply == "hmm" else "A"), ([0, 2], "A")]
    pol.seen.clear()
    (r,) = self_judge_reflect(pol, [{"prompt": q, "answer": "10"}], n_answers=4, temperature=0.7, pairwise=False)
    assert r.chosen == 0 and not any(j["kind"] == "pairwise" for j in r.judgements)
    # no Yes: an unparsed answer ranks above a No one, and the chosen one is reflected on when it is No
    pol = ScriptedPolicy(answers={q: ["12", "13"]}, judge={(q, "12"): "No", (q, "13"): "No", (q, "10"): "Yes"},
                         revise={(q, "12"): "10"}, pair={(q, "12", "13"): "A"})
    (r,) = self_judge_reflect(pol, [{"prompt": q, "answer": "10"}], n_answers=2, temperature=1.0)
    assert (r.chosen, r.revisions, r.final) == (0, ["10"], "10")


def test_verdict_parsers_are_the_verifier_labels():
    rule = RuleScorer("exact")
    for text in ("Yes", "yes.", "I think the answer is No.", "\\boxed{No}", "7", "", "No... wait, yes"):
        v = parse_pointwise(text)
        assert v == next((label for label in ("Yes", "No") if rule.check(text, label)), None)
    assert parse_pointwise("7") is None and parse_pointwise("No... wait, yes") == "Yes"
    assert parse_pairwise("(B)") == "B" and parse_pairwise("The answer is A.") == "A" and parse_pairwise("42") is None


def _recompute(records, rule):
    """Independent recomputation of the report from the records' fields."""
    ver = [r for r in records if r["reference"] is not None]
    ok = lambda text, r: rule.check(text, r["reference"])  # noqa: E731
    before = [ok(r["answers"][r["chosen"]], r) for r in ver]
    after = [ok(r["final"], r) for r in ver]
    pairs = [(v, ok(a, r)) for r in ver for a, v in zip(r["answers"], r["verdicts"])]
    parsed = [(v, right) for v, right in pairs if v is not None]
    n = len(ver)
    frac = lambda k, m: k / m if m else None  # noqa: E731
    return {"n": len(records), "n_verified": n, "acc_first": frac(sum(ok(r["answers"][0], r) for r in ver), n),
            "acc_before": frac(sum(before), n), "acc_after": frac(sum(after), n),
            "reflected": sum(bool(r["revisions"]) for r in records),
            "wrong_to_right": sum(not b and a for b, a in zip(before, after)),
            "right_to_wrong": sum(b and not a for b, a in zip(before, after)),
            "judge_n": len(parsed),
            "judge_accuracy": frac(sum((v == "Yes") == right for v, right in parsed), len(parsed)),
            "judge_unparsed": len(pairs) - len(parsed)}


def test_report_by_hand_and_recomputed():
    recs = self_judge_reflect(_policy(), ROWS, max_rounds=2)
    rep = reflection_report(recs, RuleScorer("exact"))
    # by hand: before 1 + 1 and 2 + 2 right of 5; after 2 + 3 fixed, 2 + 2 spoiled; judge: 3 of 4 parsed agree
    assert rep == {"n": 6, "n_verified": 5, "acc_first": 0.4, "acc_before": 0.4, "acc_after": 0.4, "reflected": 3,
                   "wrong_to_right": 1, "right_to_wrong": 1, "judge_n": 4, "judge_accuracy": 0.75,
                   "judge_unparsed": 1}
    assert rep == _recompute([r.to_dict() for r in recs], RuleScorer("exact"))
    rep3 = reflection_report(self_judge_reflect(_policy(), ROWS, max_rounds=3), RuleScorer("exact"))
    assert (rep3["acc_after"], rep3["wrong_to_right"]) == (0.6, 2)  # 3 + 3 fixed at round 3
    empty = reflection_report([ReflectRecord("q", None, ["a"], [None], 0)], RuleScorer("exact"))
    assert empty["n_verified"] == 0 and empty["acc_after"] is None and empty["judge_accuracy"] is None


class ArithmeticPolicy:
    """Scripted policy on the built-in arithmetic prompts: right on every other question, judges by the answer's
    parity, revises to the right answer — checked below against the arithmetic itself."""

    def __init__(self):
        self.n = 0

    @staticmethod
    def _value(q):
        a, op, b = re.search(r"What is (\d+) ([-+*]) (\d+)\?", q).groups()
        return {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]

    def generate(self, convs, temperature=0.0):
        out = []
        for c in convs:
            text = c[-1]["content"]
            if not text.startswith(TASK_MARK):
                v = self._value(text)
                out.append(str(v if self.n % 2 == 0 else v + 1))
                self.n += 1
            elif "Is the proposed answer correct?" in text:
                shown = int(re.search(r"Proposed answer: (.*)\n", text).group(1).split()[-1])
                out.append("Yes" if shown % 2 == 0 else "No")
            else:
                out.append(f"The answer is {self._value(text)}")
        return out


def test_stage_report_equals_recomputation(tmp_path):
    cfg = SparkInferConfig(data={"path": "arithmetic:n=12,seed=0,max=9,ops=+-"},
                           infer={"output_dir": str(tmp_path / "out"), "rule_mode": "exact"})
    rep = run_spark_infer(cfg, generator=ArithmeticPolicy())
    out = tmp_path / "out"
    assert json.loads((out / "report.json").read_text()) == rep and (out / "resolved_config.yaml").exists()
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert rep == _recompute(recs, RuleScorer("exact"))
    # and against the arithmetic itself, no verifier involved
    truth = lambda r, text: int(re.findall(r"-?\d+", text)[-1]) == ArithmeticPolicy._value(r["question"])  # noqa: E731
    n = len(recs)
    assert rep["acc_before"] == sum(truth(r, r["answers"][0]) for r in recs) / n == 0.5
    assert rep["acc_after"] == sum(truth(r, r["final"]) for r in recs) / n
    for r in recs:
        odd = int(r["answers"][0]) % 2 == 1
        assert r["reflected"] == odd and r["verdicts"] == ["No" if odd else "Yes"]
    assert rep["wrong_to_right"] == sum(r["reflected"] and not truth(r, r["answers"][0]) for r in recs)


def test_real_tiny_model(tiny_model_dir, tmp_path):
    from longrm.scorers.sampling import LocalSampler

    mc = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False)
    policy = LocalSampler(mc, max_new_tokens=6, batch_size=8, device="cpu")
    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + 1? Answer with the number only."}],
            "answer": str(a + 1)} for a in range(3)]
    kw = dict(n_answers=2, max_rounds=2, temperature=1.0, on_unparsed="reflect", seed=5)
    recs = self_judge_reflect(policy, rows, **kw)
    assert len(recs) == 3
    for r, row in zip(recs, rows):
        assert r.question == row["prompt"][0]["content"] and r.reference == row["answer"]
        assert len(r.answers) == 2 and all(isinstance(a, str) for a in r.answers)
        assert all(v in ("Yes", "No", None) for v in r.verdicts + r.revision_verdicts)
        assert 0 <= r.chosen < 2 and len(r.revisions) == len(r.revision_verdicts) <= 2
        # reflections follow the verdicts (unparsed counts as No here): reflect while not Yes, at most twice
        chain, k = [r.verdicts[r.chosen]] + r.revision_verdicts, len(r.revisions)
        assert all(v != "Yes" for v in chain[:k]) and (k == 2 or chain[k] == "Yes")
        assert r.final == (r.revisions[-1] if r.revisions else r.answers[r.chosen])
        json.dumps(r.to_dict())
    assert any(r.reflected for r in recs)  # a random model's judgements do not parse: reflected on here
    # seeded sampling: the same seed gives the same records
    assert [x.to_dict() for x in self_judge_reflect(policy, rows, **kw)] == [x.to_dict() for x in recs]
    rep = reflection_report(recs, RuleScorer("exact"))
    assert rep == _recompute([x.to_dict() for x in recs], RuleScorer("exact"))
    assert rep["n_verified"] == 3

    # the CLI stage on the same model, greedy, end to end
    from longrm.cli import main

    out = tmp_path / "cli"
    assert main(["spark_infer", "--model.name_or_path", str(tiny_model_dir), "--model.dtype", "float32",
                 "--data.path", "arithmetic:n=2,seed=0,max=5,ops=+", "--infer.max_new_tokens", "4",
                 "--infer.device", "cpu", "--infer.output_dir", str(out)]) == 0
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and set(json.loads((out / "report.json").read_text())) >= {"acc_before", "acc_after"}
    assert all(set(r) >= {"answers", "verdicts", "revisions", "reflected", "final"} for r in recs)


def test_stage_reads_a_jsonl_prompt_set(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text(json.dumps({"prompt": "What is 2 + 5?", "answer": "7"}) + "\n"
                 + json.dumps({"prompt": [{"role": "user", "content": "What is 4 - 1?"}], "answer": 3}) + "\n")
    cfg = SparkInferConfig(data={"path": str(p)}, infer={"output_dir": str(tmp_path / "out"), "rule_mode": "exact"})
    rep = run_spark_infer(cfg, generator=ArithmeticPolicy())
    recs = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    # 7 right, judged No (odd) -> revised to 7; 4 - 1 answered 4 (wrong), judged Yes (even) -> kept
    assert [(r["answers"], r["verdicts"], r["final"]) for r in recs] == [
        (["7"], ["No"], "The answer is 7"), (["4"], ["Yes"], "4")]
    assert (rep["acc_before"], rep["acc_after"], rep["reflected"], rep["judge_accuracy"]) == (0.5, 0.5, 1, 0.0)
