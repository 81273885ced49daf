"""The model registry in real repos: GTO tags written by gitml, read back by gitml and by the real `gto`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import git, gitml_cli, run_python

pytest.importorskip("sklearn")
pytest.importorskip("gto")

X = np.arange(12, dtype=float).reshape(-1, 2)


def gto(cwd: Path, *args: str) -> str:
    exe = Path(sys.executable).parent / "gto"
    out = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def log_models(gitml, n: int) -> list[str]:
    """Log ``n`` linear models (y = k * sum(x) for k = 1..n); their run ids."""
    from sklearn.linear_model import LinearRegression

    ids = []
    for k in range(1, n + 1):
        with gitml.start_run() as run:
            gitml.log_metric("rmse", 1.0 / k)
            gitml.sklearn.log_model(LinearRegression().fit(X, k * X.sum(axis=1)), "model")
            ids.append(run.info.run_id)
    return ids


def tags(repo: Path) -> set[str]:
    return set(git(repo, "tag", "--list").split())


def registry_state(repo: Path):
    from gitml import registry
    from gitml.store.repo import GitRepo

    return registry.load(GitRepo.discover(repo))


def test_register_writes_an_annotated_gto_tag_on_the_run_commit(tracking, repo):
    ids = log_models(tracking, 2)
    mv = tracking.register_model(f"runs:/{ids[0]}/model", "rf", description="baseline forest")
    assert (mv.version, mv.semver, mv.run_id) == ("1", "v0.0.1", ids[0])
    assert git(repo, "cat-file", "-t", "rf@v0.0.1").strip() == "tag"
    run_commit = git(repo, "rev-parse", f"refs/gitml/runs/{ids[0]}").strip()
    assert git(repo, "rev-parse", "rf@v0.0.1^{commit}").strip() == run_commit
    assert "baseline forest" in git(repo, "tag", "-l", "-n9", "rf@v0.0.1")
    # auto bump, then an explicit version from the CLI
    out = gitml_cli(repo, "models", "register", "rf", f"runs:/{ids[1]}/model", "--bump", "minor", "-m", "tuned")
    assert "v0.1.0" in out.stdout
    assert tags(repo) == {"rf@v0.0.1", "rf@v0.1.0"}
    shown = json.loads(gitml_cli(repo, "models", "show", "rf", "--json").stdout)
    assert [(v["number"], v["version"], v["description"]) for v in shown["versions"]] == [
        (1, "v0.0.1", "baseline forest"), (2, "v0.1.0", "tuned")]
    assert shown["versions"][1]["metrics"] == {"rmse": 0.5}


def test_log_model_with_registered_model_name_and_every_uri_form(tracking, repo):
    from sklearn.linear_model import LinearRegression

    models = {}
    for k in (1, 2, 3):
        with tracking.start_run():
            m = LinearRegression().fit(X, k * X.sum(axis=1))
            info = tracking.sklearn.log_model(m, "model", registered_model_name="reg")
            models[k] = m
            assert info.registered_model_version == k
    client = tracking.MlflowClient()
    client.transition_model_version_stage("reg", 2, "Production")
    client.set_registered_model_alias("reg", "staging", "3")

    def predicts(uri: str, k: int) -> None:
        got = tracking.pyfunc.load_model(uri).predict(X[:3])
        np.testing.assert_allclose(np.asarray(got), models[k].predict(X[:3]))

    predicts("models:/reg/1", 1)
    predicts("models:/reg/v0.0.3", 3)
    predicts("models:/reg/Production", 2)
    predicts("models:/reg@production", 2)
    predicts("models:/reg@staging", 3)
    predicts("models:/reg/latest", 3)
    predicts("reg@v0.0.1", 1)
    predicts("reg#production", 2)
    np.testing.assert_allclose(tracking.sklearn.load_model("models:/reg/Production").predict(X[:3]), models[2].predict(X[:3]))


def test_promote_moves_the_stage_and_gto_agrees(tracking, repo):
    ids = log_models(tracking, 3)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    gitml_cli(repo, "models", "promote", "rf", "v0.0.1", "production")
    gitml_cli(repo, "models", "promote", "rf", "2", "staging")
    out = gitml_cli(repo, "models", "promote", "rf", "v0.0.2", "Production").stdout
    assert "rf#production!#3" in out and "rf#production#4" in out
    # a rollback to a lower version: GTO picks the highest semver among holders, so the unassign matters
    gitml_cli(repo, "models", "promote", "rf", "1", "production")
    state = registry_state(repo)["rf"]
    assert {s: v.version for s, v in state.stages.items()} == {"production": "v0.0.1", "staging": "v0.0.2"}

    theirs = json.loads(gto(repo, "show", "--json"))
    assert theirs["rf"]["version"] == "v0.0.3"
    assert theirs["rf"]["stage"] == {"production": "v0.0.1", "staging": "v0.0.2"}
    their_versions = {v["version"] for v in json.loads(gto(repo, "show", "rf", "--json"))}
    assert their_versions == {"v0.0.1", "v0.0.2", "v0.0.3"}
    their_history = json.loads(gto(repo, "history", "rf", "--json"))
    ours = json.loads(gitml_cli(repo, "models", "history", "rf", "--json").stdout)
    assert {e["ref"] for e in their_history if e["event"] != "commit"} == {e["tag"] for e in ours}
    assert [e["time"] for e in ours] == sorted((e["time"] for e in ours), reverse=True)
    assert {e["author"] for e in ours} == {"Test User"}


def test_deregister_deprecate_and_gto_agrees(tracking, repo):
    ids = log_models(tracking, 2)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    gitml_cli(repo, "models", "promote", "rf", "2", "production")
    gitml_cli(repo, "models", "deregister", "rf", "v0.0.2")
    assert "rf@v0.0.2!" in tags(repo)
    state = registry_state(repo)["rf"]
    assert state.stages == {} and state.latest().version == "v0.0.1"
    theirs = json.loads(gto(repo, "show", "--json"))
    assert theirs["rf"]["version"] == "v0.0.1" and theirs["rf"]["stage"] == {}
    with pytest.raises(Exception, match="deregistered"):
        tracking.pyfunc.load_model("models:/rf/2")
    gitml_cli(repo, "models", "deprecate", "rf")
    assert "rf@deprecated" in tags(repo)
    assert registry_state(repo)["rf"].deprecated
    assert json.loads(gitml_cli(repo, "models", "list", "--json").stdout) == []
    assert json.loads(gitml_cli(repo, "models", "list", "--all", "--json").stdout)[0]["deprecated"] is True


@pytest.mark.parametrize("args, message", [
    (["promote", "rf", "v0.0.1", "prod uction"], "Invalid stage name"),
    (["promote", "rf", "9", "production"], "has no version 9"),
    (["promote", "rf", "v9.9.9", "production"], "has no version v9.9.9"),
    (["promote", "nope", "1", "production"], "No registered model named 'nope'"),
    (["promote", "rf", "1", "None"], "not a stage"),
    (["register", "r f", "runs:/{run}/model"], "Invalid model name"),
    (["register", "bad-", "runs:/{run}/model"], "Invalid model name"),
    (["register", "rf", "runs:/{run}/nothing"], "has no model at 'nothing'"),
    (["register", "rf", "runs:/{run}/model"], "registered already as rf v0.0.1"),
    (["register", "rf2", "./somewhere"], "give the model as runs:/"),
    (["register", "rf2", "runs:/{run}/model", "--version", "1.2"], "Invalid version"),
    (["unassign", "rf", "1", "staging"], "is not in stage 'staging'"),
    (["promote", "rf", "2", "production"], "was deregistered"),
    (["deregister", "rf", "2"], "was deregistered"),
    (["comment", "rf", "1", "  "], "needs some text"),
])
def test_bad_input_is_a_clear_error_and_writes_no_tag(tracking, repo, args, message):
    ids = log_models(tracking, 2)
    tracking.register_model(f"runs:/{ids[0]}/model", "rf")
    tracking.register_model(f"runs:/{ids[1]}/model", "rf")
    gitml_cli(repo, "models", "deregister", "rf", "2")
    before = tags(repo)
    notes_before = git(repo, "for-each-ref", "refs/notes/")
    out = gitml_cli(repo, "models", *[a.format(run=ids[0]) for a in args], check=False)
    assert out.returncode != 0
    assert message in out.stderr and out.stderr.startswith("Error: ")
    assert "Traceback" not in out.stderr
    assert tags(repo) == before
    assert git(repo, "for-each-ref", "refs/notes/") == notes_before


PROMOTE = """
import sys
from gitml import registry
from gitml.store.repo import GitRepo
repo = GitRepo.discover('.')
for _ in range(int(sys.argv[2])):
    registry.assign(repo, 'rf', sys.argv[1], 'production')
    registry.assign(repo, 'rf', sys.argv[3], 'production')
"""


def test_two_processes_promoting_at_once_are_both_recorded(tracking, repo):
    ids = log_models(tracking, 3)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    rounds = 6
    procs = [subprocess.Popen([sys.executable, "-c", PROMOTE, a, str(rounds), b], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a, b in (("1", "2"), ("3", "2"))]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    state = registry_state(repo)["rf"]
    assigns = [e for e in state.events if e.action == "assign"]
    # every call that changed the holder wrote its tag; none overwrote another
    counters = [e.counter for e in state.events if e.counter is not None]
    assert len(counters) == len(set(counters))
    assert len(assigns) >= rounds * 2
    # exactly one holder: the version of the last assignment in (time, counter) order
    holders = [v for v in state.versions if "production" in v.stages]
    assert len(holders) == 1 and holders[0].commit == assigns[-1].commit
    assert json.loads(gto(repo, "show", "--json"))["rf"]["stage"]["production"] == holders[0].version
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_comments_live_in_notes_and_show_in_show_and_history(tracking, repo):
    ids = log_models(tracking, 1)
    tracking.register_model(f"runs:/{ids[0]}/model", "rf", description="first cut")
    gitml_cli(repo, "models", "comment", "rf", "1", "AUC holds on the March data")
    tracking.MlflowClient().update_model_version("rf", "v0.0.1", description="signed off\nby QA")
    note = git(repo, "notes", "--ref=gitml-registry", "show", git(repo, "rev-parse", "rf@v0.0.1").strip())
    assert "AUC holds" in note
    shown = json.loads(gitml_cli(repo, "models", "show", "rf", "--json").stdout)
    assert [c["text"] for c in shown["versions"][0]["comments"]] == ["AUC holds on the March data", "signed off\nby QA"]
    history = json.loads(gitml_cli(repo, "models", "history", "rf", "--json").stdout)
    assert [e["event"] for e in history].count("comment") == 2
    text = gitml_cli(repo, "models", "show", "rf").stdout
    assert "AUC holds on the March data" in text and "first cut" in text


def test_client_registry_api(tracking, repo):
    ids = log_models(tracking, 3)
    client = tracking.MlflowClient()
    client.create_registered_model("rf")
    for i in ids:
        client.create_model_version("rf", "model", run_id=i)
    client.transition_model_version_stage("rf", 1, "Production")
    client.transition_model_version_stage("rf", 2, "Production", archive_existing_versions=True)
    assert client.get_model_version("rf", 2).current_stage == "Production"
    assert client.get_model_version("rf", "v0.0.1").current_stage == "Archived"
    latest = client.get_latest_versions("rf")
    assert {(mv.version, mv.current_stage) for mv in latest} == {("1", "Archived"), ("2", "Production"), ("3", "None")}
    assert [mv.version for mv in client.get_latest_versions("rf", stages=["Production"])] == ["2"]
    assert [mv.version for mv in client.search_model_versions("name='rf'")] == ["3", "2", "1"]
    assert [mv.run_id for mv in client.search_model_versions(f"run_id = '{ids[2]}'")] == [ids[2]]
    assert [mv.version for mv in client.search_model_versions("name LIKE 'r%' AND stage='production'")] == ["2"]
    assert [m.name for m in client.search_registered_models("name = 'rf'")] == ["rf"]
    client.transition_model_version_stage("rf", 2, "None")
    assert client.get_model_version("rf", 2).current_stage == "None"
    client.delete_model_version("rf", 3)
    assert client.get_model_version("rf", 3).status == "DEREGISTERED"
    with pytest.raises(tracking.GitmlError, match="Invalid model version filter"):
        client.search_model_versions("name = rf OR x")


def test_state_cache_follows_tags_changed_behind_its_back(tracking, repo):
    ids = log_models(tracking, 2)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    gitml_cli(repo, "models", "promote", "rf", "2", "production")
    assert (repo / ".git" / "gitml" / "registry-cache.json").is_file()
    git(repo, "tag", "-d", "rf#production#1")  # a user deletes the stage tag with plain git
    assert registry_state(repo)["rf"].stages == {}
    # a version registered with gto itself is read too
    gto(repo, "register", "rf", "HEAD", "--version", "v1.0.0")
    assert registry_state(repo)["rf"].by_version("v1.0.0") is not None
    (repo / ".git" / "gitml" / "registry-cache.json").write_text("{not json")
    assert registry_state(repo)["rf"].latest().version == "v1.0.0"


def test_registry_travels_through_a_bare_remote(tracking, repo, tmp_path, monkeypatch):
    monkeypatch.delenv("GITML_REPO")  # each command works in its own clone
    ids = log_models(tracking, 2)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    # the run goes on after registration: the version still loads the model it pinned
    with tracking.start_run(run_id=ids[1]):
        tracking.set_tag("after", "registration")
    gitml_cli(repo, "models", "promote", "rf", "2", "production")
    gitml_cli(repo, "models", "comment", "rf", "2", "ready")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "HEAD:main")
    gitml_cli(repo, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    out = gitml_cli(repo, "push").stdout
    assert "registry: 3 tags sent" in out
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-tags", str(bare), str(clone))
    gitml_cli(clone, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    assert "registry: 3 tags received" in gitml_cli(clone, "pull").stdout
    mine = json.loads(gitml_cli(repo, "models", "show", "rf", "--json").stdout)
    theirs = json.loads(gitml_cli(clone, "models", "show", "rf", "--json").stdout)
    assert theirs == mine
    assert json.loads(gto(clone, "show", "--json")) == json.loads(gto(repo, "show", "--json"))
    code = "import gitml; print(gitml.pyfunc.load_model('models:/rf/Production').predict(__import__('numpy').ones((1, 2)))[0])"
    got = run_python(code, clone)
    assert got.returncode == 0, got.stderr
    assert float(got.stdout) == pytest.approx(4.0)


def test_promotions_in_two_clones_meet_on_pull(tracking, repo, tmp_path, monkeypatch):
    monkeypatch.delenv("GITML_REPO")  # each command works in its own clone
    ids = log_models(tracking, 3)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "HEAD:main")
    gitml_cli(repo, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    gitml_cli(repo, "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    gitml_cli(clone, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    gitml_cli(clone, "pull")
    # both clones write rf#production#1 for different versions
    gitml_cli(repo, "models", "promote", "rf", "1", "production")
    gitml_cli(clone, "models", "promote", "rf", "2", "production")
    gitml_cli(repo, "push")
    out = gitml_cli(clone, "push").stdout
    assert "your unpublished rf#production#1 is now rf#production#2" in out
    gitml_cli(repo, "pull")
    a = json.loads(gitml_cli(repo, "models", "history", "rf", "--json").stdout)
    b = json.loads(gitml_cli(clone, "models", "history", "rf", "--json").stdout)
    assert {e["tag"] for e in a} == {e["tag"] for e in b}
    assert len([e for e in a if e["event"] == "assign"]) == 2
    assert registry_state(repo)["rf"].stages["production"].version == registry_state(clone)["rf"].stages["production"].version
