import json

from longrm.engine.logging import MetricsLogger


def test_tensorboard_and_jsonl(tmp_path):
    lg = MetricsLogger(tmp_path, enabled=True, total_steps=3, progress=True)
    for s in (1, 2, 3):
        lg.log(s, {"loss": 1.0 / s, "accuracy": 0.5, "lr": 1e-3, "grad_norm": 2.0, "tokens_per_s": 100})
        lg.advance()
    lg.log(3, {"accuracy": 0.9}, prefix="eval")
    lg.close()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1] == {"step": 3, "split": "eval", "accuracy": 0.9} and rows[0]["loss"] == 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "train/lr", "train/grad_norm", "train/tokens_per_s", "eval/accuracy"} <= tags


def test_disabled_logger_writes_nothing(tmp_path):
    lg = MetricsLogger(tmp_path / "x", enabled=False, total_steps=3)
    lg.log(1, {"loss": 1.0})
    lg.close()
    assert not (tmp_path / "x").exists()
