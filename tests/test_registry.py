"""The model registry in real repos: GTO tags written by gitml, read back by gitml and by the real `gto`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import copy_seed, git, gitml_invoke, init_repo, run_python, run_rev, seeding

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
    run_commit = run_rev(repo, ids[0])
    assert git(repo, "rev-parse", "rf@v0.0.1^{commit}").strip() == run_commit
    assert "baseline forest" in git(repo, "tag", "-l", "-n9", "rf@v0.0.1")
    # auto bump, then an explicit version from the CLI
    out = gitml_invoke(repo, "models", "register", "rf", f"runs:/{ids[1]}/model", "--bump", "minor", "-m", "tuned")
    assert "v0.1.0" in out.stdout
    assert tags(repo) == {"rf@v0.0.1", "rf@v0.1.0"}
    shown = json.loads(gitml_invoke(repo, "models", "show", "rf", "--json").stdout)
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
    gitml_invoke(repo, "models", "promote", "rf", "v0.0.1", "production")
    gitml_invoke(repo, "models", "promote", "rf", "2", "staging")
    out = gitml_invoke(repo, "models", "promote", "rf", "v0.0.2", "Production").stdout
    assert "rf#production!#3" in out and "rf#production#4" in out
    # a rollback to a lower version: GTO picks the highest semver among holders, so the unassign matters
    gitml_invoke(repo, "models", "promote", "rf", "1", "production")
    state = registry_state(repo)["rf"]
    assert {s: v.version for s, v in state.stages.items()} == {"production": "v0.0.1", "staging": "v0.0.2"}

    theirs = json.loads(gto(repo, "show", "--json"))
    assert theirs["rf"]["version"] == "v0.0.3"
    assert theirs["rf"]["stage"] == {"production": "v0.0.1", "staging": "v0.0.2"}
    their_versions = {v["version"] for v in json.loads(gto(repo, "show", "rf", "--json"))}
    assert their_versions == {"v0.0.1", "v0.0.2", "v0.0.3"}
    their_history = json.loads(gto(repo, "history", "rf", "--json"))
    ours = json.loads(gitml_invoke(repo, "models", "history", "rf", "--json").stdout)
    assert {e["ref"] for e in their_history if e["event"] != "commit"} == {e["tag"] for e in ours}
    assert [e["time"] for e in ours] == sorted((e["time"] for e in ours), reverse=True)
    assert {e["author"] for e in ours} == {"Test User"}


def test_deregister_deprecate_and_gto_agrees(tracking, repo):
    ids = log_models(tracking, 2)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    gitml_invoke(repo, "models", "promote", "rf", "2", "production")
    gitml_invoke(repo, "models", "deregister", "rf", "v0.0.2")
    assert "rf@v0.0.2!" in tags(repo)
    state = registry_state(repo)["rf"]
    assert state.stages == {} and state.latest().version == "v0.0.1"
    theirs = json.loads(gto(repo, "show", "--json"))
    assert theirs["rf"]["version"] == "v0.0.1" and theirs["rf"]["stage"] == {}
    with pytest.raises(Exception, match="deregistered"):
        tracking.pyfunc.load_model("models:/rf/2")
    gitml_invoke(repo, "models", "deprecate", "rf")
    assert "rf@deprecated" in tags(repo)
    assert registry_state(repo)["rf"].deprecated
    assert json.loads(gitml_invoke(repo, "models", "list", "--json").stdout) == []
    assert json.loads(gitml_invoke(repo, "models", "list", "--all", "--json").stdout)[0]["deprecated"] is True


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """A repository where 'rf' has v0.0.1 and a deregistered v0.0.2 (built once per module); the run ids."""
    import gitml

    with seeding(tmp_path_factory, "two-versions") as base:
        repo = init_repo(base / "repo")
        gitml.set_tracking_uri(repo)
        ids = log_models(gitml, 2)
        gitml.register_model(f"runs:/{ids[0]}/model", "rf")
        gitml.register_model(f"runs:/{ids[1]}/model", "rf")
        gitml_invoke(repo, "models", "deregister", "rf", "2")
        yield repo, ids


@pytest.mark.parametrize("args, message", [
    (["promote", "rf", "v0.0.1", "prod uction"], "Invalid stage name"),
    (["promote", "rf", "9", "production"], "has no version 9"),
    (["promote", "rf", "v9.9.9", "production"], "has no version v9.9.9"),
    (["promote", "nope", "1", "production"], "No registered model named 'nope'"),
    (["promote", "rf", "1", "None"], "not a stage"),
    (["register", "r f", "runs:/{run}/model"], "Invalid model name"),
    (["register", "bad-", "runs:/{run}/model"], "Invalid model name"),
    (["register", "rf", "runs:/{run}/nothing"], "has no model at 'nothing'"),
    (["register", "rf2", "./somewhere"], "give the model as runs:/"),
    (["register", "rf2", "runs:/{run}/model", "--version", "1.2"], "Invalid version"),
    (["unassign", "rf", "1", "staging"], "is not in stage 'staging'"),
    (["promote", "rf", "2", "production"], "was deregistered"),
    (["deregister", "rf", "2"], "was deregistered"),
    (["comment", "rf", "1", "  "], "needs some text"),
])
def test_bad_input_is_a_clear_error_and_writes_no_tag(two_versions, tmp_path, args, message):
    seed, ids = two_versions
    repo = copy_seed(seed, tmp_path / "repo")
    before = tags(repo)
    notes_before = git(repo, "for-each-ref", "refs/notes/")
    out = gitml_invoke(repo, "models", *[a.format(run=ids[0]) for a in args], check=False)
    assert out.returncode != 0
    assert message in out.stderr and out.stderr.startswith("Error: ")
    assert "Traceback" not in out.stderr
    assert tags(repo) == before
    assert git(repo, "for-each-ref", "refs/notes/") == notes_before


BAD_NAMES = [
    ("a" * 300, "at most 200 bytes"),  # was "unexpected OSError: File name too long"
    ("a" * 201, "at most 200 bytes"),
    ("/".join(["b" * 150] * 2), "at most 200 bytes"),
    ("HEAD", "git's special refs"),
    ("head", "git's special refs"),
    ("FETCH_HEAD", "git's special refs"),
    ("ORIG_HEAD", "git's special refs"),
    ("MERGE_HEAD", "git's special refs"),
    ("MY_OWN_HEAD", "git's special refs"),
    ("team/HEAD", "git's special refs"),
    ("refs/heads/main", "reads as a git ref"),
    ("refs/tags/rf", "reads as a git ref"),
    ("tags/rf", "reads as a git ref"),
    ("remotes/origin/rf", "reads as a git ref"),
    ("a/-b", "must start and end with a letter or digit"),
    ("a_/b", "must start and end with a letter or digit"),
]


@pytest.mark.parametrize("name, rule", BAD_NAMES)
def test_model_names_git_would_misread_or_cannot_store_are_refused(tracking, repo, name, rule):
    """issue 14: a 300-character model name gave 'unexpected OSError'; HEAD and refs/heads/main were
    accepted as model names. Each is refused in one line naming the name and the rule, and no tag is
    written, through the CLI and through log_model."""
    from sklearn.linear_model import LinearRegression

    from gitml.errors import InvalidName

    ids = log_models(tracking, 1)
    before = tags(repo)
    out = gitml_invoke(repo, "models", "register", name, f"runs:/{ids[0]}/model", check=False)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("Error: Invalid model name") and rule in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert name[:40] in out.stderr
    assert tags(repo) == before
    with pytest.raises(InvalidName, match=rule.replace("'", ".")):
        with tracking.start_run():
            tracking.sklearn.log_model(LinearRegression().fit(X, X.sum(axis=1)), "model", registered_model_name=name)
    assert tags(repo) == before


def test_a_tag_too_long_for_a_file_name_is_refused_before_any_tag_is_written(tracking, repo):
    """issue 14: a long stage (or version) made the tag's file name too long: refused by name, nothing written."""
    ids = log_models(tracking, 1)
    name = "m" * 200  # the longest model name: its tags still fit
    gitml_invoke(repo, "models", "register", name, f"runs:/{ids[0]}/model")
    gitml_invoke(repo, "models", "promote", name, "1", "s" * 30)
    assert f"{name}#{'s' * 30}#1" in tags(repo)
    before = tags(repo)
    out = gitml_invoke(repo, "models", "promote", name, "1", "s" * 60, check=False)
    assert out.returncode == 1 and out.stderr.startswith("Error: Tag name") and "over 250" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert tags(repo) == before


def test_names_gitml_accepts_are_names_gto_accepts():
    """issue 14: what gitml registers must be a subset of what gto accepts (gto/constants.py)."""
    from gto.constants import assert_fullname_is_valid

    from gitml.errors import InvalidName
    from gitml.registry import tags as grammar

    candidates = ["rf", "a", "a/b", "dir:m", "dir/x:m/n", "models/churn", "x" * 200, "HEAD", "a/-b", "a--b",
                  "refs/x", "-a:m", "a_b", "9", "a.b", "a b", "a:b:c", "team/ORIG_HEAD", "Heads/x", "a/b/"]
    for name in candidates:
        try:
            grammar.check_model_name(name)
        except InvalidName:
            continue
        assert_fullname_is_valid(name)  # raises if gto refuses it


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
    gitml_invoke(repo, "models", "comment", "rf", "1", "AUC holds on the March data")
    tracking.MlflowClient().update_model_version("rf", "v0.0.1", description="signed off\nby QA")
    note = git(repo, "notes", "--ref=gitml-registry", "show", git(repo, "rev-parse", "rf@v0.0.1").strip())
    assert "AUC holds" in note
    shown = json.loads(gitml_invoke(repo, "models", "show", "rf", "--json").stdout)
    assert [c["text"] for c in shown["versions"][0]["comments"]] == ["AUC holds on the March data"]
    # issue 16: update_model_version sets the description (MLflow's semantics), it is not a comment
    assert shown["versions"][0]["description"] == "signed off\nby QA"
    history = json.loads(gitml_invoke(repo, "models", "history", "rf", "--json").stdout)
    assert [e["event"] for e in history].count("comment") == 1
    assert [e["message"] for e in history if e["event"] == "describe"] == ["signed off\nby QA"]
    text = gitml_invoke(repo, "models", "show", "rf").stdout
    assert "AUC holds on the March data" in text and "signed off" in text
    gitml_invoke(repo, "models", "deprecate", "rf", "-m", "replaced")
    history = json.loads(gitml_invoke(repo, "models", "history", "rf", "--json").stdout)
    deprecation = next(e for e in history if e["event"] == "deprecate")
    assert deprecation["version"] is None and deprecation["message"] == "replaced"  # the model's, no version's


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


def test_registry_searches_use_the_one_filter_grammar(tracking, repo):
    """Issue 15 (2, 3): registry filters parse with gitml.tracking.filters, not a regex of their own:
    a quoted value holding ' AND ' is one value, and ILIKE folds ASCII letters only (as MLflow's
    sqlite store) while LIKE folds nothing, for models and versions alike."""
    from gitml.registry.entities import ModelVersion, matches_version
    from gitml.tracking.filters import MODEL_VERSIONS, parse_filter

    ids = log_models(tracking, 2)
    client = tracking.MlflowClient()
    client.create_registered_model("rf", tags={"note": "a AND b", "owner": "élodie"})
    client.create_registered_model("gb", tags={"note": "a", "owner": "Alice"})
    client.create_model_version("rf", f"runs:/{ids[0]}/model", run_id=ids[0], tags={"owner": "Émile"})
    client.create_model_version("gb", f"runs:/{ids[1]}/model", run_id=ids[1], tags={"owner": "alice"})

    def models(f: str) -> list[str]:
        return sorted(m.name for m in client.search_registered_models(f))

    def versions(f: str) -> list[str]:
        return sorted(v.name for v in client.search_model_versions(f))

    assert models("name='a AND b'") == [] and versions("name='a AND b'") == []
    assert models("tags.note = 'a AND b'") == ["rf"] and models("tags.note = 'a AND b' AND name = 'rf'") == ["rf"]
    assert models("tags.owner ILIKE 'a%'") == ["gb"] and models("tags.owner LIKE 'a%'") == []
    assert models("tags.owner ILIKE 'é%'") == ["rf"] and models("tags.owner ILIKE 'É%'") == []
    assert versions("tags.owner ILIKE 'A%'") == ["gb"] and versions("tags.owner LIKE 'A%'") == []
    assert versions("tags.owner ILIKE 'É%'") == ["rf"] and versions("tags.owner ILIKE 'é%'") == []
    # a name holding ' AND ' (not one GTO allows, but the grammar does not care)
    mv = ModelVersion("a AND b", "1", "v0.0.1", 0, 0, "", "", "Production", "", None, "READY", ["Production"],
                      [], "c", "t", False)
    assert matches_version(mv, parse_filter("name='a AND b' AND stage = 'production'", MODEL_VERSIONS))
    assert not matches_version(mv, parse_filter("name = 'a'", MODEL_VERSIONS))


def test_state_cache_follows_tags_changed_behind_its_back(tracking, repo):
    ids = log_models(tracking, 2)
    for i in ids:
        tracking.register_model(f"runs:/{i}/model", "rf")
    gitml_invoke(repo, "models", "promote", "rf", "2", "production")
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
    gitml_invoke(repo, "models", "promote", "rf", "2", "production")
    gitml_invoke(repo, "models", "comment", "rf", "2", "ready")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "HEAD:main")
    gitml_invoke(repo, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    out = gitml_invoke(repo, "push").stdout
    assert "registry: 3 tags sent" in out
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-tags", str(bare), str(clone))
    gitml_invoke(clone, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    assert "registry: 3 tags received" in gitml_invoke(clone, "pull").stdout
    mine = json.loads(gitml_invoke(repo, "models", "show", "rf", "--json").stdout)
    theirs = json.loads(gitml_invoke(clone, "models", "show", "rf", "--json").stdout)
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
    gitml_invoke(repo, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    gitml_invoke(repo, "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    gitml_invoke(clone, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    gitml_invoke(clone, "pull")
    # both clones write rf#production#1 for different versions
    gitml_invoke(repo, "models", "promote", "rf", "1", "production")
    gitml_invoke(clone, "models", "promote", "rf", "2", "production")
    gitml_invoke(repo, "push")
    out = gitml_invoke(clone, "push").stdout
    assert "your unpublished rf#production#1 is now rf#production#2" in out
    gitml_invoke(repo, "pull")
    a = json.loads(gitml_invoke(repo, "models", "history", "rf", "--json").stdout)
    b = json.loads(gitml_invoke(clone, "models", "history", "rf", "--json").stdout)
    assert {e["tag"] for e in a} == {e["tag"] for e in b}
    assert len([e for e in a if e["event"] == "assign"]) == 2
    assert registry_state(repo)["rf"].stages["production"].version == registry_state(clone)["rf"].stages["production"].version


# -- regressions from the registry review ---------------------------------------------------------


def open_repo(path: Path):
    from gitml.store.repo import GitRepo

    return GitRepo.discover(path)


def commits(repo: Path, n: int) -> list[str]:
    """``n`` new empty commits on the current branch; their oids."""
    out = []
    for i in range(n):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")
        out.append(git(repo, "rev-parse", "HEAD").strip())
    return out


def register_commits(repo: Path, n: int, name: str = "rf") -> list[str]:
    from gitml import registry

    gr = open_repo(repo)
    cs = commits(repo, n)
    for c in cs:
        registry.register(gr, name, c, path="model", run_id=None)
    return cs


def test_file_refs_sees_every_tag_while_pack_refs_runs(repo):
    """Loose refs are read before packed-refs: a ref being packed is in one read or the other."""
    import threading
    import time

    from gitml.store.repo import GitRepo

    head = git(repo, "rev-parse", "HEAD").strip()
    created: list[str] = []  # refs whose creation has completed (never deleted afterwards)
    stop = threading.Event()
    errors: list[str] = []

    def churn() -> None:  # new loose tags, then pack them (git writes packed-refs, then deletes the loose files)
        k = 0
        while not stop.is_set():
            batch = [f"refs/tags/t{k}-{i}" for i in range(10)]
            k += 1
            for cmd, stdin in ((["update-ref", "--stdin"], "".join(f"create {n} {head}\n" for n in batch)),
                               (["pack-refs", "--all", "--prune"], None)):
                out = subprocess.run(["git", *cmd], input=stdin, cwd=repo, text=True, capture_output=True)
                if out.returncode:
                    errors.append(out.stderr)
                if cmd[0] == "update-ref":
                    created.extend(batch)

    thread = threading.Thread(target=churn)
    thread.start()
    gr = GitRepo(repo / ".git")
    reads, missed = 0, []
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            expected = list(created)
            got = gr.file_refs("refs/tags/")
            reads += 1
            if not set(expected) <= set(got):
                missed.append(sorted(set(expected) - set(got))[:3])
    finally:
        stop.set()
        thread.join()
    assert reads > 50 and len(created) > 50 and not errors
    assert missed == [], f"{len(missed)} of {reads} reads missed existing tags, e.g. {missed[0]}"


def test_versions_registered_in_one_second_keep_their_numbers(repo):
    from gitml import registry

    gr = open_repo(repo)
    for i, c in enumerate(commits(repo, 11), 1):
        v = registry.register(gr, "rf", c, path="model", run_id=None)
        assert (v.number, v.version) == (i, f"v0.0.{i}")
    model = registry.get_model(gr, "rf")
    assert [(v.number, v.version) for v in model.versions] == [(i, f"v0.0.{i}") for i in range(1, 12)]
    assert registry.resolve(gr, "rf/9").version == "v0.0.9"
    assert registry.resolve(gr, "rf/10").version == "v0.0.10"
    times = [v.registered_at for v in model.versions]
    assert times == sorted(times) and len(set(times)) == len(times)  # GTO, ordering by time, agrees


def test_same_second_registrations_by_other_tools_order_by_semver(repo, monkeypatch):
    """Tags of one second with no counter (as gto or git write them) are ordered by semver, not by name."""
    from gitml import registry

    cs = commits(repo, 5)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000000 +0000")
    for c, v in zip(cs, ["v0.0.10", "v0.0.2", "v1.0.0", "v1.0.0-rc.10", "v1.0.0-rc.2"]):
        git(repo, "tag", "-a", f"rf@{v}", "-m", f"Registering {v}", c)
    model = registry.get_model(open_repo(repo), "rf")
    assert [v.version for v in model.versions] == ["v0.0.2", "v0.0.10", "v1.0.0-rc.2", "v1.0.0-rc.10", "v1.0.0"]


def test_stages_match_case_insensitively_and_keep_their_spelling(repo):
    from gitml import registry

    register_commits(repo, 2)
    gr = open_repo(repo)
    gto(repo, "assign", "rf", "--version", "v0.0.2", "--stage", "Production")
    for spec in ("rf#production", "rf#Production", "rf/Production", "rf/production", "rf@Production", "rf@PRODUCTION"):
        assert registry.resolve(gr, spec).version == "v0.0.2", spec
    # promoting with another case moves the existing stage: gto still sees one stage
    _, written = registry.assign(gr, "rf", 1, "production")
    assert written == ["rf#Production!#2", "rf#Production#3"]
    assert {s: v.version for s, v in registry.get_model(gr, "rf").stages.items()} == {"Production": "v0.0.1"}
    assert json.loads(gto(repo, "show", "--json"))["rf"]["stage"] == {"Production": "v0.0.1"}
    assert registry.assign(gr, "rf", 1, "PRODUCTION")[1] == []  # holds it already
    assert registry.unassign(gr, "rf", 1, "production") == ["rf#Production!#4"]
    # a new stage is written lower-case
    assert registry.assign(gr, "rf", 2, "Staging")[1] == ["rf#staging#5"]
    assert registry.resolve(gr, "rf/Staging").version == "v0.0.2"


def test_cli_promote_with_other_case_writes_the_existing_stage(repo):
    register_commits(repo, 2)
    gto(repo, "assign", "rf", "--version", "v0.0.2", "--stage", "Production")
    gitml_invoke(repo, "models", "promote", "rf", "1", "Production")
    gitml_invoke(repo, "models", "promote", "rf", "2", "production")
    assert not [t for t in tags(repo) if "#production" in t]
    assert json.loads(gto(repo, "show", "--json"))["rf"]["stage"] == {"Production": "v0.0.2"}


def test_stage_filters_are_case_insensitive_for_every_operator():
    from gitml.registry.entities import ModelVersion, matches_version
    from gitml.tracking.filters import MODEL_VERSIONS, parse_filter

    mv = ModelVersion("rf", "1", "v0.0.1", 0, 0, "", "", "Production", "", None, "READY", ["Production"],
                      ["Production"], "c", "rf@v0.0.1", False)
    none = ModelVersion("rf", "2", "v0.0.2", 0, 0, "", "", "None", "", None, "READY", [], [], "d", "rf@v0.0.2", False)

    def ok(f: str, v: ModelVersion = mv) -> bool:
        return matches_version(v, parse_filter(f, MODEL_VERSIONS))

    assert ok("stage = 'production'") and ok("stage = 'PRODUCTION'")
    assert not ok("stage != 'production'") and not ok("stage != 'PRODUCTION'")
    assert ok("stage IN ('production', 'staging')") and ok("stage IN ('PRODUCTION')")
    assert ok("stage LIKE 'prod%'") and ok("stage ILIKE 'PROD%'")
    assert ok("stage = 'None'", none) and ok("stage IN ('NONE')", none) and not ok("stage != 'none'", none)


def test_counters_count_every_tag_name_of_the_model(repo):
    """A lightweight (or unreadable) tag name still takes its counter, as in GTO's name_tag."""
    import time

    from gitml import registry

    cs = register_commits(repo, 3)
    gr = open_repo(repo)
    git(repo, "tag", "rf#production#1", cs[0])  # lightweight: not an event, but its name is taken
    start = time.monotonic()
    _, written = registry.assign(gr, "rf", 2, "production")
    assert written == ["rf#production#2"] and time.monotonic() - start < 5
    # uncounted names taken by lightweight tags: written with a counter instead
    git(repo, "tag", "rf@v0.0.3!", cs[2])
    assert registry.deregister(gr, "rf", 3) == ["rf@v0.0.3!#3"]
    assert not registry.get_model(gr, "rf").by_version("v0.0.3").active
    git(repo, "tag", "rf@deprecated", cs[0])
    assert registry.deprecate(gr, "rf") == ["rf@deprecated#4"]
    assert registry.get_model(gr, "rf").deprecated


def test_a_version_tag_in_the_way_is_a_clear_conflict(repo):
    from gitml import registry

    register_commits(repo, 1)
    gr = open_repo(repo)
    c = commits(repo, 2)
    git(repo, "tag", "rf@v0.0.2", c[0])  # lightweight: gitml would bump to this very name
    with pytest.raises(registry.RegistryConflict, match=r"Tag rf@v0\.0\.2 exists already"):
        registry.register(gr, "rf", c[1], path="model", run_id=None)
    assert registry.register(gr, "rf", c[1], path="model", run_id=None, version="v0.0.3").number == 2


def test_a_held_ref_lock_is_named_and_a_stale_one_removed(repo):
    """A lock another live process holds is named, not retried forever; one a killed process left
    (no holder, clearly old) is removed and the write goes on (issue 14)."""
    import fcntl
    import os
    import time

    from gitml import registry
    from gitml.store.repo import RefUpdateFailed

    register_commits(repo, 2)
    gr = open_repo(repo)
    lock = repo / ".git" / "refs" / "tags" / "rf#production#1.lock"
    lock.write_text("")
    held = os.open(lock, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a live gitml writer holds its locks
    try:
        start = time.monotonic()
        with pytest.raises(RefUpdateFailed, match=r"rf#production#1\.lock exists"):
            registry.assign(gr, "rf", 1, "production")
        assert time.monotonic() - start < 5
    finally:
        os.close(held)
    old = time.time() - 60
    os.utime(lock, (old, old))  # its holder is gone and it is a minute old: stale
    assert registry.assign(gr, "rf", 1, "production")[1] == ["rf#production#1"]
    assert not lock.exists()


def test_a_young_lock_let_go_while_it_is_judged_is_a_lost_race_not_a_failure(repo):
    """Another writer's young lock is waited on until it can be judged (STALE_LOCK_SECONDS, longer
    than LOCK_WAIT); when that writer has meanwhile created the ref and let go, the call retries and
    reads a lost race, then the registry writes its next tag (CI once failed two promoting processes
    on exactly this)."""
    import threading
    import time

    from gitml import registry

    register_commits(repo, 2)
    gr = open_repo(repo)
    tag_object = subprocess.run(
        ["git", "mktag"], cwd=repo, capture_output=True, text=True, check=True,
        input=f"object {commits(repo, 2)[0]}\ntype commit\ntag rf#production#1\n"
              f"tagger Other <other@example.com> {int(time.time())} +0000\n\nother writer\n").stdout.strip()
    tags_dir = repo / ".git" / "refs" / "tags"
    lock = tags_dir / "rf#production#1.lock"
    lock.write_text("")  # created and not yet flocked by its writer: young, unheld

    def other_writer_finishes():  # as git does: the ref is written, then the lock is gone
        (tags_dir / "rf#production#1").write_text(tag_object + "\n")
        lock.unlink()

    timer = threading.Timer(1.2, other_writer_finishes)
    timer.start()
    try:
        model, written = registry.assign(gr, "rf", 2, "production")
    finally:
        timer.join()
    assert written and written != ["rf#production#1"]
    assert "rf#production#1" in git(repo, "tag", "--list").split()


REF_NAMES = [
    "refs/tags/rf@v0.0.1", "refs/tags/.x=m@v0.0.1", "refs/tags/x/.y=m@v0.0.1", "refs/tags/a.lock/=m@v0.0.1",
    "refs/tags/a./=m", "refs/tags/a.", "refs/tags/a..b", "refs/tags/a@{b", "refs/tags/a@b", "refs/tags/@",
    "@", "refs/tags/a b", "refs/tags/a\tb", "refs/tags/a\x7fb", "refs/tags/a~b", "refs/tags/a^b",
    "refs/tags/a:b", "refs/tags/a?b", "refs/tags/a*b", "refs/tags/a[b", "refs/tags/a\\b", "refs/tags/",
    "refs/tags//a", "refs/tags/a/", "refs/tags/a.lock", "refs/tags/a.locks", "refs/tags/.lock",
    "refs/tags/x.y", "refs/tags/-x", "refs/tags/a/b.c/d", "refs/tags/a=b#c#1", "refs/tags/a=b@v1.0.0-rc.1+b.2",
    "refs/tags/é", "onelevel", "refs/tags/a/.b.lock", "refs/tags/a{b}", "refs/tags/a@", "refs/tags/./a",
]


@pytest.mark.parametrize("name", REF_NAMES)
def test_ref_name_rules_match_git(name):
    from gitml.store.names import valid_ref_name

    real = subprocess.run(["git", "check-ref-format", name], capture_output=True).returncode == 0
    assert valid_ref_name(name) == real


@pytest.mark.parametrize("name", [".x:m", "x/.y:m", "a.lock/:m", "x./:m", "a/.b/c:m", "x.lock:m", "dir/a.b:m",
                                  "a/b", "dir:m", "a.b/c:m", "x.y.z:m", "models/churn", "-a:m"])
def test_model_names_make_tags_git_can_see(repo, name):
    from gitml.errors import InvalidName
    from gitml.registry import tags as grammar

    tag = grammar.format(grammar.TagName(name, grammar.REGISTER, version="v0.0.1"))
    git_ok = subprocess.run(["git", "check-ref-format", f"refs/tags/{tag}"], capture_output=True).returncode == 0
    try:
        grammar.check_model_name(name)
        accepted = True
    except InvalidName:
        accepted = False
    assert not accepted or git_ok  # never a name whose tags git cannot see
    if accepted:  # and such a tag really is listed by git and read back by gitml
        from gitml import registry

        c = commits(repo, 1)[0]
        registry.register(open_repo(repo), name, c, path="model", run_id=None)
        assert tag in tags(repo)
        assert registry.get_model(open_repo(repo), name).versions[0].version == "v0.0.1"
    assert accepted == (name in ("dir/a.b:m", "a/b", "dir:m", "a.b/c:m", "x.y.z:m", "models/churn", "-a:m", "x.lock:m"))


def test_discover_agrees_with_libgit2(tmp_path):
    import pygit2

    from gitml.errors import NotARepository
    from gitml.store.repo import GitRepo

    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "-q")
    git(main, "commit", "-q", "--allow-empty", "-m", "x")
    (main / "sub" / "deeper").mkdir(parents=True)
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    (bare / "objects" / "x").mkdir(exist_ok=True)
    git(main, "worktree", "add", "-q", str(tmp_path / "wt"))
    (tmp_path / "wt" / "inside").mkdir()
    # a checked-out-looking submodule whose git dir is gone, inside the main repo
    (main / "sub" / "broken").mkdir()
    (main / "sub" / "broken" / ".git").write_text("gitdir: ../../.git/modules/broken\n")
    (main / "sub" / "broken" / "src").mkdir()
    # a worktree pruned behind its back
    (main / "sub" / "pruned").mkdir()
    (main / "sub" / "pruned" / ".git").write_text(f"gitdir: {main}/.git/worktrees/gone\n")
    (main / "sub" / "junk").mkdir()
    (main / "sub" / "junk" / ".git").write_text("not a gitfile\n")

    def ours(path: Path) -> str | None:
        try:
            return str(GitRepo.discover(path).git_dir)
        except NotARepository:
            return None

    def theirs(path: Path) -> str | None:
        found = pygit2.discover_repository(str(path))
        return str(Path(found).resolve()) if found else None

    cases = [main, main / "sub" / "deeper", bare, bare / "objects" / "x", main / ".git", main / ".git" / "refs",
             tmp_path / "wt", tmp_path / "wt" / "inside", main / "sub" / "broken", main / "sub" / "broken" / "src",
             main / "sub" / "pruned"]
    for case in cases:
        assert ours(case) == theirs(case), case
    assert ours(main / "sub" / "broken" / "src") is None
    assert ours(main / "sub" / "junk") is None  # git: invalid gitfile format
    assert ours(tmp_path / "wt" / "inside") == str((main / ".git" / "worktrees" / "wt").resolve())
    assert ours(tmp_path) is None or ours(tmp_path) == theirs(tmp_path)


def test_discover_stops_at_ceiling_directories(tmp_path, monkeypatch):
    import pygit2

    from gitml.errors import NotARepository
    from gitml.store.repo import GitRepo

    git(tmp_path, "init", "-q", "top")
    inner = tmp_path / "top" / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path / "top" / "a"))
    with pytest.raises(NotARepository):
        GitRepo.discover(inner)
    assert pygit2.discover_repository(str(inner), False, str(tmp_path / "top" / "a")) is None
    assert GitRepo.discover(tmp_path / "top" / "a").git_dir == (tmp_path / "top" / ".git").resolve()
    assert GitRepo.discover(tmp_path / "top").git_dir == (tmp_path / "top" / ".git").resolve()
    for ceiling, start in (("top/a", "top/a"), ("top/a", "top/a/b"), ("top", "top/a/b"), ("top", "top"),
                           ("top", "top/a")):
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path / ceiling))
        real = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=tmp_path / start,
                              capture_output=True, text=True)
        try:
            ours = str(GitRepo.discover(tmp_path / start).git_dir)
        except NotARepository:
            ours = None
        assert ours == (str(Path(real.stdout.strip()).resolve()) if real.returncode == 0 else None), (ceiling, start)


def test_register_model_from_artifact_uri(tracking, repo):
    """mlflow.register_model(f"{run.info.artifact_uri}/model"): artifact_uri ends in '/'."""
    from sklearn.linear_model import LinearRegression

    with tracking.start_run() as run:
        tracking.sklearn.log_model(LinearRegression().fit(X, X.sum(axis=1)), "model")
    assert run.info.artifact_uri.endswith("/")
    mv = tracking.register_model(f"{run.info.artifact_uri}/model", "rf")
    assert (mv.version, mv.source) == ("1", f"runs:/{run.info.run_id}/model")


def test_wrong_shaped_cache_entries_are_misses(repo):
    from gitml import registry
    from gitml.registry.state import CACHE_FILE

    register_commits(repo, 2)
    gr = open_repo(repo)
    registry.comment(gr, "rf", 1, "looks good")
    model = registry.get_model(gr, "rf")
    registry.run_metrics(gr, model.versions)
    registry.comments(gr, model.versions)
    path = repo / ".git" / "gitml" / CACHE_FILE
    data = json.loads(path.read_text())
    oids = list(data["tags"])
    bad_rows = [[1, 2], "x", 5, {"a": 1}, ["t", "a", "e", "1", 0, "m"], [None] * 6]
    for bad_notes in ([1, 2], {"commit": 5}, {"commit": "abc", "notes": [1]}, {"commit": "abc", "notes": {"x": 1}}):
        data["tags"] = {oid: bad_rows[i % len(bad_rows)] for i, oid in enumerate(oids)}
        data["metrics"] = {c: [1, 2] for c in data["metrics"]} or {"x": "y"}
        data["notes"] = bad_notes
        path.write_text(json.dumps(data))
        model = registry.get_model(gr, "rf")
        assert [v.version for v in model.versions] == ["v0.0.1", "v0.0.2"]
        assert all(m == {} for m in registry.run_metrics(gr, model.versions).values())
        assert [c.text for c in registry.comments(gr, model.versions)[model.versions[0].tag]] == ["looks good"]
    # every row that was damaged is read again and stored right
    data["tags"] = {oid: [1, 2] for oid in oids}
    path.write_text(json.dumps(data))
    registry.get_model(gr, "rf")
    assert all(isinstance(row, list) and len(row) == 6 for row in json.loads(path.read_text())["tags"].values())


def test_a_deprecated_model_does_not_load_but_still_shows(repo):
    from gitml import registry

    register_commits(repo, 2)
    gr = open_repo(repo)
    registry.assign(gr, "rf", 2, "production")
    registry.deprecate(gr, "rf")
    for spec in ("rf/1", "rf/latest", "rf@production", "rf#production", "rf/v0.0.2"):
        with pytest.raises(registry.ModelDeprecated,
                           match="(?i)model rf is deprecated; register a new version to revive it"):
            registry.resolve(gr, spec)
    out = gitml_invoke(repo, "models", "show", "rf", "--json").stdout
    assert json.loads(out)["deprecated"] is True
    assert json.loads(gitml_invoke(repo, "models", "list", "--all", "--json").stdout)[0]["deprecated"] is True
    assert "deprecate" in gitml_invoke(repo, "models", "history", "rf").stdout
    # a new version revives the model
    registry.register(gr, "rf", commits(repo, 1)[0], path="model", run_id=None)
    assert registry.resolve(gr, "rf/latest").version == "v0.0.3"
