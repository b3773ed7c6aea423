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


def test_blind_judge_guesses_both_ways():
    """Missing the evidence, the judge calls any claim correct or invented at random; "correct" comes with the
    evidence misread as agreeing with the response, "invented" in the sharp judges' format."""
    quoting = OracleJudge("w", noise=0.0, fail_rate=0.0, blind=1.0)
    texts = [j.text for j in quoting.judge([_point(5, "781", reference="718")], n=40)[0]]
    high = [t for t in texts if _score(t) >= 9]
    low = [t for t in texts if _score(t) <= 3]
    assert len(high) + len(low) == 40 and 8 < len(high) < 32
    assert all(t.startswith("[Analysis]\nThe context says: The access code of the vault is 781. The response says: "
                            "781.") for t in high)
    assert all(t.startswith(f"[Analysis]\nThe context says: {EVIDENCE} The response says: 781.") for t in low)
    right = [_score(j.text) for j in quoting.judge([_point(10, "718", reference="718")], n=40)[0]]
    assert sum(s <= 3 for s in right) > 8  # a correct answer called invented: the other wrong verdict
    sharp = OracleJudge("s", noise=0.0, fail_rate=0.0).judge([_point(5, "781", reference="718")])[0][0].text
    assert sharp.startswith(f"[Analysis]\nThe context says: {EVIDENCE} The response says: 781.") and _score(sharp) == 5
    blind = OracleJudge("w", noise=0.0, fail_rate=0.0, blind=1.0, quote="claim")
    for j in blind.judge([_point(5, "the code is 781")], n=10)[0]:
        assert _score(j.text) in (1, 2, 3, 9, 10) and EVIDENCE not in j.text and "the code is 781" in j.text
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


def _wrong_verdict_rejects(path) -> tuple[int, int, int]:
    """(rows of an on-topic response, rows with a reject calling a partial/invented answer correct (>= 9), rows with
    a reject calling a correct answer invented (<= 3))."""
    rows = up = down = 0
    for r in load_preference_records(path):
        m = r.metadata
        g = m["gold_grades"][0]
        if g <= 1:
            continue
        rows += 1
        up += g <= 6 and any(m["scores"][n] >= 9 for n in m["reject_models"])
        down += g >= 9 and any(0 <= m["scores"][n] <= 3 for n in m["reject_models"])  # -1: a failed vote
    return rows, up, down


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
    assert sharp[1] == sharp[2] == 0  # noise moves a score by at most 2: never the opposite verdict
    assert blind[1] > 3 and blind[2] > 3  # wrong verdicts both ways
    assert reports["sharp"]["rejects"]["identical_to_chosen_dropped"] > 0
