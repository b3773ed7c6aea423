import pytest


@pytest.fixture(scope="session")
def warm_policy(tiny_model_dir, tmp_path_factory):
    """The tiny policy after a short supervised warm start on a + b (a, b ≤ 4): sampled answers are right ~40% of
    the time, so verifier rewards vary inside prompt groups."""
    from cotrain_helpers import warm_start_policy

    return warm_start_policy(tiny_model_dir, tmp_path_factory.mktemp("warm-policy"), steps=100)
