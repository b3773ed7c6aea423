import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from longrm.config import ModelConfig
    from longrm.models import load_tokenizer

    return load_tokenizer(ModelConfig(name_or_path="tiny:qwen2"))
