import json

from longrm.config import load_config
from stages import pipeline


def _cfg(tmp_path, steps):
    f = tmp_path / "p.yaml"
    import yaml
    f.write_text(yaml.safe_dump({"pipeline": {"output_dir": str(tmp_path / "out"), "steps": steps}}))
    return load_config(pipeline.Config, f)


def test_failed_step_stops_and_is_not_recorded(tmp_path):
    cfg = _cfg(tmp_path, [{"stage": "no-such-stage"}, {"stage": "push"}])
    assert pipeline.run(cfg) == 2
    assert not (tmp_path / "out" / "pipeline_state.json").exists()


def test_done_steps_are_skipped(tmp_path, capsys):
    cfg = _cfg(tmp_path, [{"stage": "no-such-stage"}])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pipeline_state.json").write_text(json.dumps({"no-such-stage": {"done": True}}))
    assert pipeline.run(cfg) == 0
    assert "skipped" in capsys.readouterr().out


def test_command_substitutes_out(tmp_path):
    step = pipeline.Step(stage="sft", config="c.yaml", overrides=["--train.output_dir", "{out}/sft"],
                         launcher="torchrun --nproc_per_node 2")
    cmd = pipeline._command(step, "/o")
    assert cmd[:2] == ["torchrun", "--nproc_per_node"] and cmd[-3:] == ["c.yaml", "--train.output_dir", "/o/sft"]
