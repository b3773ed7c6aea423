"""Shared test fixtures: the official LongRM data samples and a tiny model built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``shared/`` sits beside the repository (CI clones main with shared/ next to it)."""
    for cand in (REPO.parent / "shared", Path("/work/shared")):
        if cand.exists():
            return cand
    raise FileNotFoundError("shared/ not found beside the repository")


@pytest.fixture(scope="session")
def official_fixtures() -> Path:
    return shared_dir() / "fixtures" / "longrm-official"
