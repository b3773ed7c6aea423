"""``longrm push`` and longrm.hub against a fake Hub on 127.0.0.1 (tests/hub_fake.py) with huggingface_hub's
real client: repo create (private), branch, commit message, the model card (config, data summary, eval table,
plot), the optional dataset push, and the token: from HF_TOKEN only, never in logs, the card, the uploaded
files or the resolved configs."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub_fake import FakeHub
from longrm.config import ConfigError, load_config, save_resolved
from longrm.hub import CARD_MARKER, BackgroundPusher, HubError, push_dataset, push_folder
from stages import push as push_stage

REPO = Path(__file__).resolve().parents[1]
SECRET = "hf_secretTOKENvalue_0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # stands in for the eval plot


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
        root = Path(kw["folder_path"])
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        self.calls.append(("upload_folder", {**kw, "files": files}))
        return "https://hub/commit/abc"


# -- a finished run: model folder, its run folder, the synthesis output and an eval folder ------------------
@pytest.fixture
def run_dirs(tiny_model_dir, tmp_path):
    from stages import align

    synth = tmp_path / "synth"
    synth.mkdir()
    data = synth / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "prompt": [{"role": "user", "content": "ctx"}],
                                        "chosen": "[[A]]", "rejected": ["[[B]]"]}) + "\n" for i in range(3)))
    (synth / "report.json").write_text(json.dumps({
        "examples": 4, "tasks": 8, "kept": 3, "dropped": {"no_consensus": 5}, "kept_by_bucket": {"4k": 2, "8k": 1},
        "votes_per_task": 3, "agreement": {"mean_majority_fraction": 0.81, "unanimous_fraction": 0.5},
        "output": str(data)}))
    out = tmp_path / "align"
    folder = out / "final"
    shutil.copytree(tiny_model_dir, folder)
    cfg = load_config(align.Config, REPO / "configs" / "align_tiny.yaml",
                      ["--data.path", str(data), "--train.output_dir", str(out), "--model.name_or_path", "Qwen/Qwen3-8B"])
    save_resolved(cfg, folder)
    save_resolved(cfg, out)
    (out / "summary.json").write_text(json.dumps({"steps": 12, "train": {"loss": 0.4321}, "eval": {"pref_acc": 0.75}}))
    ev = tmp_path / "eval"
    ev.mkdir()
    from longrm.eval.report import results_markdown, summarize, write_metrics

    rows = [{"source": "LongQA", "tasktype": "PairWise", "subtype": "same", "ctx_length": "4k", "score": 1.0,
             "parse_ok": True},
            {"source": "Summ", "tasktype": "PairWise", "subtype": "diff", "ctx_length": "8k", "score": 0.0,
             "parse_ok": True}]
    metrics = summarize(rows, name="align-final", model=str(folder), mode="pairwise")
    write_metrics(metrics, ev / "metrics.json")
    (ev / "results.md").write_text(results_markdown([metrics]))
    (ev / "accuracy_vs_length.png").write_bytes(PNG)
    return {"folder": folder, "out": out, "data": data, "synth": synth, "eval": ev, "root": tmp_path}


@pytest.fixture
def hub_env(monkeypatch):
    """HF_TOKEN + HF_ENDPOINT of a fake hub; huggingface_hub's offline switch (set by conftest) turned off."""
    from huggingface_hub import constants

    with FakeHub(token=SECRET) as hub:
        monkeypatch.setenv("HF_TOKEN", SECRET)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield hub


def _no_secret_in_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert SECRET.encode() not in p.read_bytes(), p


# -- the CLI end to end (a separate process, as a user runs it) --------------------------------------------
def test_push_cli_model_and_dataset_against_fake_hub(run_dirs, tmp_path):
    folder, ev, data = run_dirs["folder"], run_dirs["eval"], run_dirs["data"]
    before = sorted(p.name for p in folder.iterdir())
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    with FakeHub(token=SECRET) as hub:
        env.update(HF_TOKEN=SECRET, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), HF_DEBUG="1",
                   HF_HUB_VERBOSITY="debug", HF_HUB_DISABLE_PROGRESS_BARS="1")
        res = subprocess.run(
            [sys.executable, "-m", "longrm", "push", "--config", str(REPO / "configs" / "push.yaml"),
             "--push.folder", str(folder), "--push.repo_id", "my-org/longrm-rm", "--push.branch", "step-12",
             "--push.commit_message", "align final (step 12)", "--push.eval_dir", str(ev),
             "--dataset.path", str(data), "--dataset.repo_id", "my-org/longrm-synth"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    logs = res.stdout + res.stderr
    assert res.returncode == 0, logs
    assert "Send: curl" in logs  # huggingface_hub's debug log of every request ran ...
    assert SECRET not in logs  # ... and the token is nowhere in what was printed
    # repos: both private, dataset typed
    creates = [r.json() for r in hub.requests if r.path == "/api/repos/create"]
    assert {(c["organization"], c["name"], c.get("type"), c["visibility"]) for c in creates} == {
        ("my-org", "longrm-rm", None, "private"), ("my-org", "longrm-synth", "dataset", "private")}
    assert "POST /api/models/my-org/longrm-rm/branch/step-12" in hub.paths()
    # every request carried the token from the environment, and no body holds it
    api = [r for r in hub.requests if r.path != "/api/agent-harnesses"]  # (a public registry read, no token)
    assert len(api) >= 8 and all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in api)
    assert not any(SECRET.encode() in r.body for r in hub.requests)
    # the commits: revision and message
    (dcommit, mcommit) = hub.commits
    assert (mcommit["repo_id"], mcommit["revision"], mcommit["summary"]) == ("my-org/longrm-rm", "step-12",
                                                                             "align final (step 12)")
    assert (dcommit["type"], dcommit["repo_id"], dcommit["revision"]) == ("dataset", "my-org/longrm-synth", "main")
    assert set(mcommit["paths"]) >= {"README.md", "config.json", "model.safetensors", "tokenizer.json",
                                     "resolved_config.yaml", "eval/metrics.json", "eval/results.md",
                                     "eval/accuracy_vs_length.png"}
    assert hub.file("my-org/longrm-rm", "model.safetensors", revision="step-12") == \
        (folder / "model.safetensors").read_bytes()
    assert hub.file("my-org/longrm-rm", "eval/accuracy_vs_length.png", revision="step-12") == PNG
    # the card: front matter, config, data summary, eval table, plot
    card = hub.file("my-org/longrm-rm", "README.md", revision="step-12").decode()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and "reward-model" in front["tags"]
    assert front["base_model"] == "Qwen/Qwen3-8B" and front["datasets"] == ["my-org/longrm-synth"]
    assert CARD_MARKER in card and "Stage II alignment of a generative judge (LOGO)" in card
    assert f"training data: `{data}`" in card and "3 kept" in card and "4k: 2, 8k: 1" in card
    assert "12 optimizer steps, final loss 0.4321" in card and "pref_acc 0.75" in card
    assert "| align-final |" in card and "100.0" in card  # the eval table row (LongQA pairwise 1/1)
    assert "![pairwise accuracy vs context length](eval/accuracy_vs_length.png)" in card
    assert "## Training config" in card and "lr: " in card and "num_rejects: 1" in card
    assert SECRET not in card
    # the dataset: data file + dataset card
    assert hub.file("my-org/longrm-synth", "data.jsonl", rtype="dataset") == data.read_bytes()
    dcard = hub.file("my-org/longrm-synth", "README.md", rtype="dataset").decode()
    assert "3 rows kept of 8 judge tasks" in dcard and "| 4k | 2 |" in dcard
    # the model folder is untouched, and no file the run wrote holds the token (resolved configs included)
    assert sorted(p.name for p in folder.iterdir()) == before
    _no_secret_in_tree(run_dirs["root"])


# -- in-process: the same client, the fake hub, the error paths ---------------------------------------------
def test_push_folder_default_branch_public_repo_and_card_regenerated(run_dirs, hub_env, caplog):
    folder = run_dirs["folder"]
    with caplog.at_level(logging.DEBUG):
        url = push_folder(folder, "org/rm", private=False, commit_message="first")
    assert url.startswith(hub_env.url) and url.endswith(hub_env.commits[0]["oid"])
    assert hub_env.repos[("model", "org/rm")]["visibility"] == "public"
    assert not any("/branch/" in p for p in hub_env.paths())
    assert hub_env.commits[0]["revision"] == "main" and hub_env.commits[0]["summary"] == "first"
    card = hub_env.file("org/rm", "README.md").decode()
    assert "## Evaluation" not in card and "eval/" not in " ".join(hub_env.commits[0]["paths"])
    # a README.md that LongRM generated is replaced by a fresh card; a hand-written one is kept
    (folder / "README.md").write_text(card)
    push_folder(folder, "org/rm", eval_dir=run_dirs["eval"], commit_message="second")
    assert "## Evaluation" in hub_env.file("org/rm", "README.md").decode()
    (folder / "README.md").write_text("# my own card\n")
    push_folder(folder, "org/rm", eval_dir=run_dirs["eval"], commit_message="third")
    assert hub_env.file("org/rm", "README.md").decode() == "# my own card\n"
    assert [c["summary"] for c in hub_env.commits] == ["first", "second", "third"]
    assert SECRET not in caplog.text


def test_push_dataset_folder(hub_env, tmp_path):
    d = tmp_path / "ds"
    (d / "train").mkdir(parents=True)
    (d / "train" / "data-00000-of-00001.arrow").write_bytes(b"arrow")
    (d / "dataset_dict.json").write_text('{"splits": ["train"]}')
    push_dataset(d, "org/ds", private=True)
    assert set(hub_env.commits[0]["paths"]) == {"README.md", "dataset_dict.json", "train/data-00000-of-00001.arrow"}
    assert hub_env.repos[("dataset", "org/ds")]["visibility"] == "private"


def test_wrong_token_fails_in_one_line_without_the_token(run_dirs, hub_env, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrongTOKEN_987654321")
    cfg = load_config(push_stage.Config, None, ["--push.folder", str(run_dirs["folder"]), "--push.repo_id", "org/rm"])
    assert push_stage.run(cfg) == 1
    out = capsys.readouterr()
    assert "longrm push: failed:" in out.err and "401" in out.err
    assert "hf_wrongTOKEN_987654321" not in out.out + out.err and not hub_env.commits


def test_no_token_no_request(run_dirs, hub_env, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    cfg = load_config(push_stage.Config, None, ["--push.folder", str(run_dirs["folder"]), "--push.repo_id", "org/rm"])
    assert push_stage.run(cfg) == 1
    assert "export HF_TOKEN" in capsys.readouterr().err and hub_env.requests == []


def test_offline_mode_is_named(run_dirs, hub_env, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        push_folder(run_dirs["folder"], "org/rm")
    assert hub_env.requests == []


def test_token_is_no_config_key_and_a_leaked_token_is_not_pushed(run_dirs, hub_env):
    with pytest.raises(ConfigError, match="unknown key 'push.token'"):
        load_config(push_stage.Config, None, ["--push.token", SECRET])
    folder = run_dirs["folder"]
    with open(folder / "resolved_config.yaml", "a") as f:
        f.write(f"# {SECRET}\n")
    with pytest.raises(HubError, match="resolved_config.yaml contains the HF_TOKEN value") as e:
        push_folder(folder, "org/rm")
    assert SECRET not in str(e.value) and hub_env.requests == []


def test_background_pusher_pushes_in_order(run_dirs, hub_env, tmp_path):
    a, b = tmp_path / "hf" / "step-1", tmp_path / "hf" / "step-2"
    for d in (a, b):
        shutil.copytree(run_dirs["folder"], d)
    pusher = BackgroundPusher("org/ckpts", branch="run-1")
    pusher.submit(a, "align step 1")
    pusher.submit(b, "align step 2")
    pusher.close(timeout=60)
    assert pusher.errors == [] and pusher.done == [str(a), str(b)]
    assert [(c["revision"], c["summary"]) for c in hub_env.commits] == [("run-1", "align step 1"),
                                                                        ("run-1", "align step 2")]


# -- without a network: the stage's wiring and the pusher's failure handling (a stand-in API object) ---------
def test_push_stage_wiring(run_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"pairwise_avg": 0.61, "name": "x", "nested": {"a": 1}}))
    cfg = load_config(push_stage.Config, REPO / "configs" / "push.yaml",
                      ["--push.folder", str(run_dirs["folder"]), "--push.repo_id", "org/x",
                       "--push.metrics_json", str(metrics)])
    api = FakeApi()
    assert push_stage.run(cfg, api=api) == 0
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    up = api.calls[-1][1]
    assert up["repo_id"] == "org/x" and up["revision"] is None and up["commit_message"] == "Upload LongRM model"
    assert Path(up["folder_path"]).name == "final"  # the staged upload keeps the folder's name (step-N, final)
    card = up["files"]["README.md"].decode()
    assert "| pairwise_avg | 0.61 |" in card and "nested" not in card


def test_dataset_needs_repo_id(run_dirs):
    cfg = load_config(push_stage.Config, None, ["--push.folder", str(run_dirs["folder"]), "--push.repo_id", "o/x",
                                                "--dataset.path", str(run_dirs["data"])])
    with pytest.raises(SystemExit, match="dataset.repo_id"):
        push_stage.run(cfg, api=FakeApi())


def test_background_pusher_never_raises(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    bad = BackgroundPusher("org/rm", api=FakeApi(fail=True))
    bad.submit(tiny_model_dir, "ckpt")
    bad.close(timeout=30)
    assert bad.errors and "ConnectionError" in bad.errors[0]
