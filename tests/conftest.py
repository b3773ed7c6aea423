"""Shared test fixtures: the official LongRM data samples and a tiny model built once per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Test helper modules (compute_helpers, eval_fakes, slurm_harness, ...) are imported by plain name from any
# test folder; under --import-mode=importlib pytest no longer puts test folders on sys.path, so do it here.
for _d in [TESTS, *sorted(p for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))]:
    if str(_d) not in sys.path:
        sys.path.insert(0, str(_d))


def shared_dir() -> Path:
    """``shared/`` sits beside the repository (CI clones main with shared/ next to it)."""
    for cand in (REPO.parent / "shared", Path("/work/shared")):
        if cand.exists():
            return cand
    raise FileNotFoundError("shared/ not found beside the repository")


@pytest.fixture(scope="session")
def official_fixtures() -> Path:
    return shared_dir() / "fixtures" / "longrm-official"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny Qwen2 model + tokenizer, built in a session cache folder (as ``tiny:qwen2`` resolves it)."""
    os.environ.setdefault("LONGRM_CACHE", str(tmp_path_factory.getbasetemp() / "longrm-cache"))
    from longrm.models import resolve_model_path

    return Path(resolve_model_path("tiny:qwen2"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))
