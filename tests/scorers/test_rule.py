"""rule scorer: answer extraction, normalisation, both checkers, NaN without a reference."""
import math

import pytest

from longrm.scorers import RuleSection, ScorerConfig, build_scorer
from longrm.scorers.base import Sample
from longrm.scorers.rule import RuleScorer, extract_final_answer, math_verify_available, normalize_answer

CASES = [  # (completion, answer, match)
    ("3 + 4 = 7. The answer is 7.", "7", True),
    ("3 + 4 = 8", "7", False),
    ("so x = \\boxed{12}", "12", True),
    ("\\boxed{41}", "\\boxed{42}", False),
    ("no idea", "3", False),
    ("", "3", False),
    ("The result: 1,000", "1000", True),
    ("-3", "-3", True),
    ("7.0", "7", True),
    ("first 7, finally 9", "7", False),  # the last number is the answer
]


def test_extract_and_normalize():
    assert extract_final_answer("3 + 4 = 7. The answer is 7.") == "7."
    assert extract_final_answer("so x = \\boxed{\\frac{1}{2}} ok") == "\\frac{1}{2}"
    assert extract_final_answer("a 1 b 22 c") == "22"
    assert extract_final_answer("nothing") is None
    assert normalize_answer(" 7. ") == "7" and normalize_answer("1,000") == "1000" and normalize_answer("$7.0$") == "7"
    assert normalize_answer("Paris.") == "paris"


@pytest.mark.parametrize("mode", ["exact", "math_verify"])
def test_checkers_on_arithmetic(mode):
    if mode == "math_verify" and not math_verify_available():
        pytest.skip("math-verify not installed")
    r = RuleScorer(mode)
    samples = [Sample(prompt="q", completion=c, answer=a, group=i) for i, (c, a, _) in enumerate(CASES)]
    assert r.score(samples) == [float(m) for _, _, m in CASES]


def test_math_verify_equivalent_forms():
    if not math_verify_available():
        pytest.skip("math-verify not installed")
    r = RuleScorer("math_verify")
    assert r.check("0.5", "\\frac{1}{2}") and r.check("\\boxed{(x+1)^2}", "x^2+2x+1")
    assert not RuleScorer("exact").check("0.5", "\\frac{1}{2}")  # exact match does not know fractions


def test_no_reference_is_nan_and_registry():
    r = build_scorer(ScorerConfig(name="rule", rule=RuleSection(mode="exact")))
    assert r.name == "rule" and r.mode == "exact"
    out = r.score([Sample("q", "7", None), Sample("q", "7", "7")])
    assert math.isnan(out[0]) and out[1] == 1.0
