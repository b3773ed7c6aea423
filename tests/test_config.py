import subprocess
import sys
from typing import Literal

import pytest
import yaml
from pydantic import Field

from longrm.config import (ConfigError, DataConfig, ModelConfig, Section, TrainConfig, describe_config, load_config,
                           parse_overrides, save_resolved)


class Inner(Section):
    beta: float = 2.5
    mode: Literal["logo", "dpo"] = "logo"


class Demo(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    loss: Inner = Field(default_factory=Inner)


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 1.0e-5\n  max_steps: 3\nloss:\n  mode: dpo\n")
    cfg = load_config(Demo, f, ["--train.lr", "2e-6", "--loss.beta=0.1", "--model.dtype", "float32",
                                "--train.adam_betas", "[0.9, 0.99]"])
    assert cfg.train.lr == 2e-6 and cfg.train.max_steps == 3 and cfg.loss.mode == "dpo"
    assert cfg.loss.beta == 0.1 and cfg.model.dtype == "float32" and cfg.train.adam_betas == (0.9, 0.99)


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lrr: 1.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(Demo, f)
    assert str(f) in str(e.value) and "unknown key 'train.lrr'" in str(e.value)


def test_wrong_type_names_key_and_origin(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  max_steps: lots\n")
    with pytest.raises(ConfigError) as e:
        load_config(Demo, f)
    assert f"{f}: train.max_steps" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(Demo, None, ["--loss.mode", "ppo"])
    assert "command line: loss.mode" in str(e.value)
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(Demo, None, ["--nope", "1"])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Demo, tmp_path / "missing.yaml")
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Demo, tmp_path / "l.yaml")
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(["--train.lr"])


def test_resolved_config_roundtrips(tmp_path):
    cfg = load_config(Demo, None, ["--train.lr", "3e-6"])
    p = save_resolved(cfg, tmp_path)
    again = load_config(Demo, p)
    assert again == cfg and yaml.safe_load(p.read_text())["train"]["lr"] == 3e-6


def test_describe_lists_keys():
    keys = {r[0] for r in describe_config(Demo)}
    assert {"train.lr", "model.name_or_path", "loss.beta", "data.on_bad_record"} <= keys


def test_cli_help_lists_stages():
    out = subprocess.run([sys.executable, "-m", "longrm", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "stages:" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "longrm", "no-such-stage"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "unknown stage" in bad.stderr


def test_describe_shows_the_stage_default_not_the_section_default():
    class Stage(Section):
        model: ModelConfig = Field(default_factory=lambda: ModelConfig(dtype="float32", gradient_checkpointing=False))

    rows = {r[0]: r[2] for r in describe_config(Stage)}
    assert rows["model.dtype"] == "'float32'" and rows["model.gradient_checkpointing"] == "False"


def test_every_stage_help_lists_its_keys():
    from longrm.cli import _stage_help, discover_stages

    stages = discover_stages()
    assert {"push", "pipeline"} <= set(stages)
    for name, mod in stages.items():
        text = _stage_help(name, mod)
        assert f"longrm {name}" in text and "config keys" in text and " = " in text


def test_publish_dir_replaces_and_never_leaves_dest_missing(tmp_path, monkeypatch):
    import os

    from longrm.config import atomic_dir, publish_dir

    dest = tmp_path / "model"
    with atomic_dir(dest) as tmp:
        tmp.mkdir()
        (tmp / "w").write_text("v1")
    with atomic_dir(dest) as tmp:
        tmp.mkdir()
        (tmp / "w").write_text("v2")
    assert (dest / "w").read_text() == "v2" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    new = tmp_path / "new"
    new.mkdir()
    (new / "w").write_text("v3")
    real = os.replace

    def swap_fails(src, dst):
        if str(src) == str(new):
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, "replace", swap_fails)
    with pytest.raises(OSError, match="disk full"):
        publish_dir(new, dest)
    assert (dest / "w").read_text() == "v2"  # the older folder is put back
