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


def test_quality_table_and_json_line(tmp_path, capsys):
    from longrm.eval.report import summarize, write_metrics

    rows = [{"source": "LongQA", "tasktype": "PairWise", "subtype": "diff", "ctx_length": "4k", "score": s,
             "parse_ok": True} for s in (1, 1, 0, 1)]
    write_metrics(summarize(rows, name="x", mode="pointwise"), tmp_path / "ev" / "metrics.json")
    import yaml
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"pipeline": {"output_dir": str(tmp_path / "out"), "steps": [],
                                              "quality": [{"name": "j", "stages": {"after": str(tmp_path / "ev")}}]}}))
    assert pipeline.run(load_config(pipeline.Config, f)) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["quality"]["j"]["after"]["pairwise"] == 0.75 and last["output_dir"] == str(tmp_path / "out")
    assert "| j | after | 75.0 |" in (tmp_path / "out" / "quality.md").read_text()
