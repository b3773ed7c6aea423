import logging

from longrm.config import load_config
from longrm.hub import BackgroundPusher, push_folder
from stages import push as push_stage


class FakeApi:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))

    def create_branch(self, **kw):
        self.calls.append(("create_branch", kw))

    def upload_folder(self, **kw):
        if self.fail:
            raise ConnectionError("hub unreachable")
        from pathlib import Path
        self.calls.append(("upload_folder", {**kw, "files": sorted(p.name for p in Path(kw["folder_path"]).iterdir())}))
        return "https://hub/commit/abc"


def test_push_writes_card_and_uploads(tiny_model_dir, tmp_path, monkeypatch, caplog):
    import shutil
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "resolved_config.yaml").write_text("train:\n  lr: 2.0e-06\n")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    api = FakeApi()
    with caplog.at_level(logging.DEBUG):
        url = push_folder(folder, "org/rm", branch="step-10", metrics={"pairwise_avg": 0.61}, api=api)
    assert url.endswith("abc")
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    up = api.calls[-1][1]
    assert up["revision"] == "step-10" and "README.md" in up["files"] and "model.safetensors" in up["files"]
    card = (folder / "README.md").read_text()
    assert "reward-model" in card and "lr: 2.0e-06" in card and "pairwise_avg" in card
    assert "hf_secret_value_123" not in caplog.text and "hf_secret_value_123" not in card


def test_background_pusher_never_raises(tiny_model_dir):
    bad = BackgroundPusher("org/rm", api=FakeApi(fail=True))
    bad.submit(tiny_model_dir, "ckpt")
    bad.close(timeout=30)
    assert bad.errors and "ConnectionError" in bad.errors[0]


def test_push_stage_wiring(tiny_model_dir, tmp_path):
    import shutil
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    cfg = load_config(push_stage.Config, None, ["--push.folder", str(folder), "--push.repo_id", "org/x"])
    api = FakeApi()
    assert push_stage.run(cfg, api=api) == 0
    assert api.calls[-1][1]["repo_id"] == "org/x"
