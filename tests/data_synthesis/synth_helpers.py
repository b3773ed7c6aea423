"""Synthesis configs for tests: a configs/ YAML with a few keys replaced by dotted paths."""
from __future__ import annotations

from pathlib import Path

import yaml

from data_synthesis.config import SynthesizeConfig

ROOT = Path(__file__).resolve().parents[2]


def synth_config(name: str, over: dict) -> SynthesizeConfig:
    """``configs/<name>`` with ``over`` applied: ``{"a.b.c": value}`` sets ``tree["a"]["b"]["c"]``."""
    tree = yaml.safe_load((ROOT / "configs" / name).read_text())
    for dotted, value in over.items():
        node = tree
        *head, last = dotted.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = value
    return SynthesizeConfig.model_validate(tree)
