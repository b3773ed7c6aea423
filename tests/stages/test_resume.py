"""6 uninterrupted steps vs 3 steps + kill -9 + resume for 3 more: the same final loss (fp32, deterministic)."""
import pytest

from stage_helpers import TINY, last_by_step, metrics, run, run_and_kill_after_checkpoint

pytestmark = pytest.mark.slow


def test_kill_and_resume_matches_uninterrupted(tmp_path, tiny_model_dir):
    common = TINY + ["--train.max_steps", "6", "--train.save_every", "3"]
    a, b = tmp_path / "straight", tmp_path / "killed"
    run("align", common + ["--train.output_dir", str(a)])
    rc = run_and_kill_after_checkpoint("align", common + ["--train.output_dir", str(b)], b, "step-00000003")
    assert rc == -9
    assert not (b / "final").exists()
    p = run("align", common + ["--train.output_dir", str(b)])  # the same command again
    assert "resumed from" in p.stderr and "at step 3" in p.stderr
    ra, rb = last_by_step(metrics(a)), last_by_step(metrics(b))
    assert sorted(ra) == sorted(rb) == [1, 2, 3, 4, 5, 6]
    for s in (4, 5, 6):
        assert rb[s]["loss"] == pytest.approx(ra[s]["loss"], abs=1e-5), s
        assert rb[s]["lr"] == pytest.approx(ra[s]["lr"], rel=1e-9)
    assert (b / "final" / "model.safetensors").exists() and (b / "final" / "tokenizer.json").exists()
    assert (b / "final" / "resolved_config.yaml").exists()
    assert (b / "checkpoints" / "latest").read_text().strip() == "step-00000006"
    # a finished run rerun is a no-op that keeps the result
    p = run("align", common + ["--train.output_dir", str(b)])
    assert "resumed from" in p.stderr and "6 steps" in p.stdout
