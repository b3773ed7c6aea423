from pathlib import Path

from longrm.engine import checkpoint as ck


def test_rotate_keeps_newest_and_protected(tmp_path):
    for s in (1, 2, 3, 4):
        (tmp_path / ck.tag_for(s)).mkdir()
    ck._rotate(tmp_path, 2, protect={ck.tag_for(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [ck.tag_for(1), ck.tag_for(3), ck.tag_for(4)]


def test_latest_and_partial_cleanup(tmp_path):
    root = tmp_path / ck.CKPT
    (root / ".tmp-step-00000009").mkdir(parents=True)
    (root / ck.tag_for(8)).mkdir()
    (tmp_path / ck.HF / ".tmp-step-00000009").mkdir(parents=True)
    assert ck.latest_tag(tmp_path) is None
    (root / "latest").write_text(ck.tag_for(8))
    assert ck.latest_tag(tmp_path) == ck.tag_for(8)
    (root / "latest").write_text(ck.tag_for(9))  # points at something that never completed
    assert ck.latest_tag(tmp_path) is None
    ck.clean_partial(tmp_path)
    assert not list(Path(tmp_path).rglob(".tmp-*"))


def test_rng_roundtrip():
    import random

    import torch

    st = ck.rng_state()
    a = (torch.rand(3), random.random())
    ck.set_rng_state(st)
    b = (torch.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
