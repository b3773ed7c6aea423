"""It really trains: align (LOGO) on the tiny model and the built-in synthetic long-context preference set
lifts held-out preference accuracy from chance to well above it (configs/align_tiny.yaml, ~340-token examples, 8 per row, 120 steps)."""
import pytest

from stage_helpers import metrics, run

pytestmark = pytest.mark.slow


def test_align_lifts_heldout_accuracy(tmp_path, tiny_model_dir):
    out = tmp_path / "align"
    run("align", ["--config", "configs/align_tiny.yaml", "--train.output_dir", str(out), "--train.save_every", "0",
                  "--train.eval_every", "0"], timeout=400)
    ev = metrics(out, "eval")
    start, end = ev[0], ev[-1]
    assert start["step"] == 0 and end["step"] == 120 and end["examples"] == 128
    print(f"held-out preference accuracy: {start['accuracy']:.3f} -> {end['accuracy']:.3f}")
    assert 0.3 <= start["accuracy"] <= 0.7  # chance: the verdict is not guessable without the context
    assert end["accuracy"] >= 0.85
