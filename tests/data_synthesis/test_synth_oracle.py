"""The simulated judge's ``blind`` error mode (a weak long-context judge), and what it gives LOGO: rejects that
state the wrong verdict, never a reject identical to the chosen judgement."""
import re

import pytest

from data_synthesis.judges.base import JudgeRequest
from data_synthesis.judges.oracle import OracleJudge
from data_synthesis.pipeline import run_synthesis
from data_synthesis.synthetic import NO_CLAIM
from longrm.records import load_preference_records

from .synth_helpers import synth_config

EVIDENCE = "The access code of the vault is 718."


def _point(grade: int, claim: str, key: str = "t0", reference: str | None = None) -> JudgeRequest:
    hint = {"kind": "pointwise", "grade": grade, "evidence": EVIDENCE, "claims": [claim]}
    if reference:
        hint["reference"] = reference
    return JudgeRequest([{"role": "user", "content": "x"}], hint, key)


def _score(text: str) -> int:
    return int(re.search(r"\[Score: (\d+)\]", text).group(1))


def test_blind_judge_takes_every_claim_for_correct():
    blind = OracleJudge("w", noise=0.0, fail_rate=0.0, blind=1.0, quote="claim")
    for g, claim in ((5, "the code is 781"), (2, "the code is 555"), (10, "the code is 718")):
        text = blind.judge([_point(g, claim)])[0][0].text
        assert _score(text) in (9, 10) and EVIDENCE not in text and claim in text  # found no evidence to quote
    # quoting the evidence, it misreads the context as saying what the response says — in the sharp format
    quoting = OracleJudge("w", noise=0.0, fail_rate=0.0, blind=1.0)
    text = quoting.judge([_point(5, "781", reference="718")])[0][0].text
    assert text.startswith("[Analysis]\nThe context says: The access code of the vault is 781. The response says: 781.")
    assert _score(text) in (9, 10)
    sharp = OracleJudge("s", noise=0.0, fail_rate=0.0).judge([_point(5, "781", reference="718")])[0][0].text
    assert sharp.startswith(f"[Analysis]\nThe context says: {EVIDENCE} The response says: 781.") and _score(sharp) == 5
    off = blind.judge([_point(0, NO_CLAIM)])[0][0].text
    assert _score(off) == 0  # an answer that makes no claim still looks like no answer
    # pairwise: two claims look equally right; a claim beats no claim
    pair = JudgeRequest([{"role": "user", "content": "x"}],
                        {"kind": "pairwise", "grades": [0, 5], "evidence": EVIDENCE, "claims": [NO_CLAIM, "781"]}, "p")
    for s in range(8):
        assert OracleJudge("w", noise=0.0, fail_rate=0.0, position_bias=0.0, blind=1.0).judge(
            [pair], n=8)[0][s].text.rstrip().endswith("[[B]]")


def test_blind_off_changes_nothing():
    reqs = [_point(g, c, key=f"k{i}") for i, (g, c) in enumerate([(5, "781"), (9, "718"), (0, NO_CLAIM)] * 5)]
    a = OracleJudge("j", seed=3).judge(reqs, n=2)
    b = OracleJudge("j", seed=3, blind=0.0).judge(reqs, n=2)
    assert [[j.text for j in r] for r in a] == [[j.text for j in r] for r in b]


def _wrong_verdict_rejects(path) -> tuple[int, int]:
    """(rows of a partial/hallucinated response, of which have a reject scoring it as correct, >= 9)."""
    rows = hits = 0
    for r in load_preference_records(path):
        m = r.metadata
        if m["gold_grades"][0] >= 7 or m["gold_grades"][0] <= 1:
            continue
        rows += 1
        hits += any(m["scores"][n] >= 9 for n in m["reject_models"])
    return rows, hits


@pytest.mark.parametrize("panel", ["third_judge_blind", "fourth_weak_judge"])
def test_a_blind_judge_gives_logo_wrong_verdicts_to_reject(tmp_path, panel):
    """Either one of three judges is blind half the time, or (the SmolLM2 preset's panel) a fourth, weak judge
    joins three sharp ones with ``min_agree: 2``: the weak votes never make the majority."""
    def cfg(name, blind):
        c = synth_config("synthesize_quickstart.yaml", {
            "source.synthetic.num_examples": 60, "expand.distractors.pool_size": 60, "heldout.num_examples": 0,
            "output": {"dir": str(tmp_path / name), "path": str(tmp_path / name / "data.jsonl")}})
        if panel == "third_judge_blind":
            c.judges[2].oracle.blind = blind
        else:
            weak = c.judges[2].model_copy(deep=True)
            weak.name, weak.oracle.seed, weak.oracle.blind = "oracle-weak", 4, blind
            c.judges.append(weak)
            c.vote.min_agree = 2
        return c

    reports = {}
    for name, b in (("sharp", 0.0), ("blind", 0.5)):
        c = cfg(name, b)
        reports[name] = run_synthesis(c)["report"]
        for r in load_preference_records(c.output.path):
            assert r.chosen not in r.rejected
            m = r.metadata
            # the blind judge alone never makes the majority: the chosen score stays near the gold grade
            assert abs(m["chosen_score"] - m["gold_grades"][0]) <= 2
    sharp, blind = _wrong_verdict_rejects(tmp_path / "sharp" / "data.jsonl"), _wrong_verdict_rejects(
        tmp_path / "blind" / "data.jsonl")
    assert sharp[0] > 20 and blind[0] > 20
    assert sharp[1] == 0  # noise moves a score by at most 2: a partial answer is never rated correct
    assert blind[1] / blind[0] > 0.2  # ~half the rows: the blind judge misses the evidence half the time
    assert reports["sharp"]["rejects"]["identical_to_chosen_dropped"] > 0
