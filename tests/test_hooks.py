"""gitml's git hooks with real git: `git commit` and `git push` fire the installed scripts.

Issue 8, part 1: post-commit logs a run from params/metrics files, pre-push
pushes runs and notes with the branch, both chain the user's own hooks.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitml.hooks import install as hooks_install
from gitml.hooks import postcommit
from tests.conftest import git, git_run_ids, gitml_cli, run_python, run_rev

DOCS = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"


def commit(repo: Path, message: str, *args: str) -> subprocess.CompletedProcess:
    """``git commit`` as a user runs it (hooks fire); fails the test if git fails."""
    out = subprocess.run(["git", "commit", "-q", "-m", message, *args], cwd=repo, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out


def runs(repo: Path) -> list[dict]:
    return json.loads(gitml_cli(repo, "runs", "list", "--json", "-n", "1000").stdout)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def write_hook(path: Path, body: str, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)


def snapshot_dir(directory: Path) -> dict[str, tuple[bytes, int]]:
    """name -> (bytes, mode) of every file in ``directory``."""
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.lstat().st_mode)) for p in sorted(directory.iterdir())}


@pytest.fixture
def hooked(repo: Path) -> Path:
    gitml_cli(repo, "hooks", "install")
    return repo


# -- post-commit ------------------------------------------------------------------------------


def test_post_commit_logs_run_from_params_and_metrics_with_commit_as_source(hooked):
    (hooked / "params.yaml").write_text("train:\n  lr: 0.1\n  layers: [64, 32]\n  opt:\n    name: adam\nseed: 7\n")
    (hooked / "metrics.json").write_text(json.dumps({"acc": 0.91, "loss": {"train": 0.2, "val": 0.3}, "n": 5}))
    git(hooked, "add", ".")
    out = commit(hooked, "train with lr 0.1")
    sha = head(hooked)

    [run] = runs(hooked)
    assert run["data"]["params"] == {"train.lr": "0.1", "train.layers": "[64, 32]", "train.opt.name": "adam",
                                     "seed": "7"}
    assert run["data"]["metrics"] == {"acc": 0.91, "loss.train": 0.2, "loss.val": 0.3, "n": 5.0}
    assert run["data"]["tags"]["gitml.hook"] == "post-commit"
    assert run["data"]["tags"]["mlflow.source.git.commit"] == sha
    assert run["info"]["status"] == "FINISHED"
    assert run["source"]["commit"] == sha and run["source"]["dirty"] is False
    # the run commit's parent is the new commit itself: `gitml log` and git notes show it there
    run_commit = run_rev(hooked, run['info']['run_id'])
    assert git(hooked, "rev-parse", f"{run_commit}^").strip() == sha
    assert run["info"]["run_id"] in git(hooked, "log", "-1", "--notes=gitml", "--format=%N")
    assert f"logged run {run['info']['run_id'][:12]}" in out.stderr


def test_post_commit_commit_touching_no_params_or_metrics_logs_nothing(hooked):
    (hooked / "train.py").write_text("print('changed')\n")
    out = commit(hooked, "code only", "-a")
    assert runs(hooked) == []
    assert out.stderr == ""
    assert git(hooked, "for-each-ref", "refs/gitml/") == ""


def test_post_commit_malformed_metrics_file_warns_and_the_commit_stands(hooked):
    (hooked / "params.yaml").write_text("alpha: 0.5\n")
    (hooked / "metrics.json").write_text('{"acc": 0.9,,}')
    git(hooked, "add", ".")
    before = head(hooked)
    out = commit(hooked, "broken metrics")
    assert head(hooked) != before
    assert "warning" in out.stderr and "metrics.json" in out.stderr and "not valid JSON" in out.stderr
    assert len([line for line in out.stderr.splitlines() if "metrics.json" in line]) == 1
    [run] = runs(hooked)  # what could be read is still logged
    assert run["data"]["params"] == {"alpha": "0.5"} and run["data"]["metrics"] == {}


def test_post_commit_malformed_yaml_only_warns_and_logs_nothing(hooked):
    (hooked / "params.yaml").write_text("alpha: [1, 2\nbeta: 3\n")
    git(hooked, "add", ".")
    out = commit(hooked, "broken params")
    assert "params.yaml: not valid YAML" in out.stderr
    assert runs(hooked) == []


def test_post_commit_yaml_is_loaded_safely(hooked, tmp_path):
    marker = tmp_path / "pwned"
    (hooked / "params.yaml").write_text(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    git(hooked, "add", ".")
    out = commit(hooked, "hostile params")
    assert not marker.exists()
    assert "params.yaml" in out.stderr and runs(hooked) == []


def test_post_commit_skips_non_numeric_metrics_with_a_warning(hooked):
    (hooked / "metrics.yaml").write_text("acc: 0.8\nmodel: resnet\nok: true\nhist: [1, 2]\n")
    git(hooked, "add", ".")
    out = commit(hooked, "metrics")
    assert "metrics.yaml: skipped metrics that are not numbers: model, ok, hist" in out.stderr
    [run] = runs(hooked)
    assert run["data"]["metrics"] == {"acc": 0.8}


def test_post_commit_reads_the_committed_version_not_the_work_tree(hooked):
    (hooked / "params.yaml").write_text("alpha: 1\n")
    git(hooked, "add", "params.yaml")
    (hooked / "params.yaml").write_text("alpha: 2\n")  # edited again, not staged
    commit(hooked, "stage alpha 1")
    [run] = runs(hooked)
    assert run["data"]["params"] == {"alpha": "1"}


def test_post_commit_watched_paths_come_from_git_config(hooked):
    git(hooked, "config", "gitml.hooks.params", " conf/train.yaml , ")
    git(hooked, "config", "gitml.hooks.metrics", "eval/*.json")
    (hooked / "params.yaml").write_text("ignored: 1\n")  # no longer watched
    git(hooked, "add", ".")
    commit(hooked, "default names only")
    assert runs(hooked) == []

    (hooked / "conf").mkdir()
    (hooked / "conf" / "train.yaml").write_text("depth: 4\n")
    (hooked / "eval").mkdir()
    (hooked / "eval" / "test.json").write_text('{"auc": 0.7}')
    git(hooked, "add", ".")
    commit(hooked, "configured names")
    [run] = runs(hooked)
    assert run["data"]["params"] == {"depth": "4"}
    assert run["data"]["metrics"] == {"auc": 0.7}
    assert run["data"]["tags"]["gitml.hook.files"] == "conf/train.yaml,eval/test.json"


def test_post_commit_always_logs_every_commit_into_the_configured_experiment(hooked):
    git(hooked, "config", "gitml.hooks.always", "true")
    git(hooked, "config", "gitml.hooks.experiment", "from-hooks")
    (hooked / "metrics.json").write_text('{"acc": 0.5}')
    git(hooked, "add", ".")
    commit(hooked, "metrics")
    (hooked / "train.py").write_text("print(2)\n")
    commit(hooked, "code", "-a")  # changes no watched file: logged anyway, with the metrics at that commit
    logged = runs(hooked)
    assert len(logged) == 2
    assert {r["source"]["commit"] for r in logged} == {head(hooked), git(hooked, "rev-parse", "HEAD~1").strip()}
    assert all(r["data"]["metrics"] == {"acc": 0.5} for r in logged)
    [exp] = [e for e in json.loads(gitml_cli(hooked, "experiments", "list", "--json").stdout)
             if e["name"] == "from-hooks"]
    assert {r["info"]["experiment_id"] for r in logged} == {exp["experiment_id"]}


def test_post_commit_bad_boolean_setting_counts_as_false_with_a_warning(hooked):
    git(hooked, "config", "gitml.hooks.always", "maybe")
    (hooked / "train.py").write_text("print(2)\n")
    assert commit(hooked, "code", "-a").stderr == ""  # the script reads it as false: nothing to log
    (hooked / "params.yaml").write_text("a: 1\n")
    git(hooked, "add", ".")
    out = commit(hooked, "params")
    assert "gitml: warning: git config gitml.hooks.always='maybe' is not a boolean" in out.stderr
    [run] = runs(hooked)
    assert run["data"]["params"] == {"a": "1"}


def test_post_commit_hook_whose_python_is_gone_warns_and_commits(repo):
    hooks_install.install(repo, ("post-commit",), python=str(repo / "gone" / "python"))
    (repo / "params.yaml").write_text("a: 1\n")
    git(repo, "add", ".")
    out = commit(repo, "params")
    assert "is gone, so no run was logged" in out.stderr
    assert runs(repo) == []


def test_post_commit_in_a_linked_worktree(hooked, tmp_path):
    wt = tmp_path / "wt"
    git(hooked, "worktree", "add", "-q", "-b", "exp", str(wt))
    (wt / "params.yaml").write_text("lr: 0.3\n")
    git(wt, "add", ".")
    commit(wt, "in the worktree")
    [run] = runs(hooked)
    assert run["data"]["params"] == {"lr": "0.3"}
    assert run["source"]["commit"] == head(wt) and run["source"]["branch"] == "exp"
    # its note too (a linked worktree's git dir has no objects/ of its own: notes were skipped there)
    assert run["info"]["run_id"] in git(wt, "log", "-1", "--notes=gitml", "--format=%N")


def test_run_post_commit_by_hand_for_an_older_commit(repo):
    (repo / "metrics.json").write_text('{"acc": 0.1}')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "no hooks installed yet")
    (repo / "train.py").write_text("print(3)\n")
    git(repo, "commit", "-qam", "later")
    gitml_cli(repo, "hooks", "run", "post-commit", "--rev", "HEAD~1")
    [run] = runs(repo)
    assert run["source"]["commit"] == git(repo, "rev-parse", "HEAD~1").strip()
    assert gitml_cli(repo, "hooks", "run", "post-commit").stderr == ""  # HEAD changed no watched file


def test_run_post_commit_again_for_a_commit_logs_no_second_run_unless_forced(repo):
    """Issue 18 (7): `gitml hooks run post-commit --rev X` logged a second run for a commit the hook had
    logged already (a CI job run twice). A run of the commit not from the hook does not count, nor
    does a deleted hook run; --force logs another."""
    (repo / "params.yaml").write_text("lr: 0.1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "params")
    sha = head(repo)
    assert run_python("import gitml\nwith gitml.start_run(run_name='by-hand'):\n    pass\n", repo).returncode == 0

    first = gitml_cli(repo, "hooks", "run", "post-commit", "--rev", sha)
    [hook_run] = [r for r in runs(repo) if r["data"]["tags"].get("gitml.hook") == "post-commit"]
    run_id = hook_run["info"]["run_id"]
    assert f"logged run {run_id[:12]}" in first.stderr

    again = gitml_cli(repo, "hooks", "run", "post-commit", "--rev", "HEAD")
    assert again.returncode == 0
    assert again.stderr == (f"gitml: commit {sha[:7]} has run {run_id[:12]} from the hook already; "
                            "not logged again (--force logs another)\n")
    assert len(runs(repo)) == 2

    forced = gitml_cli(repo, "hooks", "run", "post-commit", "--rev", sha, "--force")
    assert "gitml: logged run" in forced.stderr and len(runs(repo)) == 3

    for r in runs(repo):
        if r["data"]["tags"].get("gitml.hook"):
            gitml_cli(repo, "runs", "delete", r["info"]["run_id"])
    after_delete = gitml_cli(repo, "hooks", "run", "post-commit", "--rev", sha)
    assert "gitml: logged run" in after_delete.stderr
    assert [r["data"]["tags"].get("gitml.hook") for r in runs(repo)].count("post-commit") == 1


# -- chaining, install, uninstall ---------------------------------------------------------------


def test_existing_user_hooks_keep_running(repo, tmp_path):
    log = tmp_path / "user-hook.log"
    write_hook(repo / ".git" / "hooks" / "post-commit", f"echo post-commit >> {log}\nexit 3\n")
    gitml_cli(repo, "hooks", "install")
    (repo / "params.yaml").write_text("a: 1\n")
    git(repo, "add", ".")
    commit(repo, "params")  # post-commit's status never fails a commit, the user's or ours
    assert log.read_text() == "post-commit\n"
    assert len(runs(repo)) == 1


def test_install_twice_is_idempotent(repo):
    hooks = repo / ".git" / "hooks"
    write_hook(hooks / "pre-push", "exit 0\n")
    gitml_cli(repo, "hooks", "install")
    once = snapshot_dir(hooks)
    out = gitml_cli(repo, "hooks", "install").stdout
    assert snapshot_dir(hooks) == once
    assert out.count("already installed") == 2
    assert (hooks / "pre-push.gitml-chained").read_text() == "#!/bin/sh\nexit 0\n"
    status = {s["name"]: s for s in json.loads(gitml_cli(repo, "hooks", "status", "--json").stdout)}
    assert status["pre-push"]["state"] == status["post-commit"]["state"] == "installed"
    assert status["pre-push"]["chained"] == str(hooks / "pre-push.gitml-chained")
    assert status["post-commit"]["python"] == sys.executable


def test_uninstall_restores_the_original_hooks_byte_for_byte(repo):
    hooks = repo / ".git" / "hooks"
    (hooks / "post-commit").write_bytes(b"#!/bin/sh\r\n# \xff not utf-8\r\necho hi\r\n")
    (hooks / "post-commit").chmod(0o741)
    os.symlink("post-commit", hooks / "pre-push")  # a symlinked hook stays a symlink
    before = snapshot_dir(hooks)
    gitml_cli(repo, "hooks", "install")
    assert (hooks / "post-commit.gitml-chained").exists()
    out = gitml_cli(repo, "hooks", "uninstall").stdout
    assert "your own hook is back" in out
    assert snapshot_dir(hooks) == before
    assert os.readlink(hooks / "pre-push") == "post-commit"


def test_uninstall_one_hook_and_without_user_hooks(repo):
    hooks = repo / ".git" / "hooks"
    before = snapshot_dir(hooks)
    gitml_cli(repo, "hooks", "install")
    gitml_cli(repo, "hooks", "uninstall", "--pre-push")
    assert not (hooks / "pre-push").exists() and (hooks / "post-commit").exists()
    gitml_cli(repo, "hooks", "uninstall")
    assert snapshot_dir(hooks) == before
    assert "not installed" in gitml_cli(repo, "hooks", "uninstall").stdout


def test_a_foreign_hook_over_a_chained_one_is_a_conflict_never_overwritten(repo):
    hooks = repo / ".git" / "hooks"
    write_hook(hooks / "post-commit", "echo mine\n")
    gitml_cli(repo, "hooks", "install", "--post-commit")
    write_hook(hooks / "post-commit", "echo a hook manager replaced gitml's\n")
    before = snapshot_dir(hooks)
    out = gitml_cli(repo, "hooks", "install", "--post-commit", check=False)
    assert out.returncode == 1 and "move one of them out of the way" in out.stderr
    out = gitml_cli(repo, "hooks", "uninstall", "--post-commit", check=False)
    assert out.returncode == 1 and "is not gitml's hook" in out.stderr
    assert snapshot_dir(hooks) == before


def test_core_hooks_path_is_respected(repo, tmp_path):
    log = tmp_path / "shared.log"
    git(repo, "config", "core.hooksPath", ".githooks")
    write_hook(repo / ".githooks" / "post-commit", f"echo shared >> {log}\n")
    default_before = snapshot_dir(repo / ".git" / "hooks")
    out = gitml_cli(repo, "hooks", "install").stdout
    assert str(repo / ".githooks" / "post-commit") in out
    assert snapshot_dir(repo / ".git" / "hooks") == default_before
    (repo / "metrics.json").write_text('{"acc": 1}')
    git(repo, "add", "metrics.json")
    commit(repo, "metrics")
    assert log.read_text() == "shared\n" and len(runs(repo)) == 1
    gitml_cli(repo, "hooks", "uninstall")
    assert sorted(p.name for p in (repo / ".githooks").iterdir()) == ["post-commit"]


# -- pre-push -------------------------------------------------------------------------------------


@pytest.fixture
def remote(hooked: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(hooked, "remote", "add", "origin", str(bare))
    return bare


def push(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", "main", *args], cwd=repo, capture_output=True, text=True,
                          check=False)


def test_git_push_sends_runs_and_notes_with_the_branch(hooked, remote, tmp_path):
    log = tmp_path / "user-pre-push.log"
    write_hook(hooked / ".git" / "hooks" / "pre-push.gitml-chained", f'echo "$1 $(cat)" >> {log}\n')
    (hooked / "metrics.json").write_text('{"acc": 0.9}')
    git(hooked, "add", ".")
    commit(hooked, "metrics")
    [run] = runs(hooked)
    out = push(hooked)
    assert out.returncode == 0, out.stderr
    assert "gitml: pushed 1 run and notes to origin" in out.stderr
    on_remote = git(remote, "ls-remote", str(remote))
    assert run["info"]["run_id"] in git_run_ids(remote)
    assert "refs/notes/gitml" in on_remote and "refs/heads/main" in on_remote
    # the chained hook ran once (gitml's own push does not fire hooks) and saw git's ref lines
    assert log.read_text().count("\n") == 1 and f"refs/heads/main {head(hooked)}" in log.read_text()


def test_a_failing_user_pre_push_hook_still_blocks_the_push(hooked, remote):
    write_hook(hooked / ".git" / "hooks" / "pre-push.gitml-chained", "echo 'no pushing on fridays' >&2\nexit 1\n")
    (hooked / "metrics.json").write_text('{"acc": 0.9}')
    git(hooked, "add", ".")
    commit(hooked, "metrics")
    out = push(hooked)
    assert out.returncode != 0 and "no pushing on fridays" in out.stderr
    assert git(remote, "ls-remote", str(remote)) == ""  # neither the branch nor gitml's refs


LOG_ARTIFACT = """
import gitml
with gitml.start_run():
    gitml.log_text("weights", "model.txt")
"""


def test_pre_push_without_an_artifact_remote_warns_and_the_push_goes_on(hooked, remote):
    out = run_python(LOG_ARTIFACT, hooked)
    assert out.returncode == 0, out.stderr
    out = push(hooked)
    assert out.returncode == 0, out.stderr
    assert "gitml: warning: no runs were pushed to origin: they have artifacts" in out.stderr
    assert "gitml remote add" in out.stderr
    refs = git(remote, "ls-remote", str(remote))
    assert "refs/heads/main" in refs and "refs/gitml/" not in refs


def test_pre_push_strict_blocks_the_push_when_runs_cannot_go(hooked, remote):
    git(hooked, "config", "gitml.hooks.strict", "true")
    assert run_python(LOG_ARTIFACT, hooked).returncode == 0
    out = push(hooked)
    assert out.returncode != 0
    assert "gitml.hooks.strict is true" in out.stderr and "--no-verify" in out.stderr
    assert git(remote, "ls-remote", str(remote)) == ""
    assert push(hooked, "--no-verify").returncode == 0  # the way out the message names


def test_pre_push_unreachable_gitml_push_warns_but_never_blocks_by_default(hooked, tmp_path):
    out = subprocess.run([sys.executable, "-m", "gitml.hooks", "pre-push", str(tmp_path / "nowhere.git")],
                         cwd=hooked, input="", capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert out.stderr.startswith("gitml: warning: could not push runs to ")
    assert out.stderr.endswith("does not appear to be a git repository. Your push goes on.\n")
    assert out.stderr.count("\n") == 1


# -- pieces -------------------------------------------------------------------------------------------


def test_flatten_uses_dotted_keys_like_dvc_params_diff():
    data = {"a": {"b": {"c": 1}, "d": [1, {"e": 2}]}, "f": {}, "g": None}
    assert dict(postcommit.flatten(data)) == {"a.b.c": 1, "a.d": [1, {"e": 2}], "g": None}


@pytest.mark.parametrize("name, text, message", [
    ("metrics.json", "[1, 2]", "metrics.json: expected a mapping"),
    ("params.yaml", "a: b: c", "params.yaml: not valid YAML"),
    ("p.json", "{", "p.json: not valid JSON"),
])
def test_parse_file_errors_name_the_file(name, text, message):
    with pytest.raises(ValueError, match=message):
        postcommit.parse_file(name, text.encode())


def test_hook_scripts_ship_as_package_data():
    from fnmatch import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parent.parent
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gitml"]
    for name in ("post-commit", "pre-push"):
        assert any(fnmatch(f"hooks/scripts/{name}", p) for p in patterns)
        assert hooks_install.template(name).startswith(b"#!/bin/sh\n")


def test_docs_cover_every_hook_setting():
    from gitml.hooks.config import SETTINGS

    text = DOCS.read_text()
    assert [s.key for s in SETTINGS.values() if s.key not in text] == []


def test_pre_push_of_gitml_refs_alone_does_not_push_again(hooked, remote):
    lines = f"refs/gitml/runs/{'a' * 32} {'1' * 40} refs/gitml/runs/{'a' * 32} {'0' * 40}\n"
    out = subprocess.run([sys.executable, "-m", "gitml.hooks", "pre-push", "origin", str(remote)],
                         cwd=hooked, input=lines, capture_output=True, text=True, check=False)
    assert (out.returncode, out.stderr) == (0, "")


BOMB = """a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f {k1: *e, k2: *e, k3: *e, k4: *e, k5: *e, k6: *e, k7: *e, k8: *e, k9: *e, k10: *e}
"""


def test_post_commit_caps_keys_aliases_sizes_and_depth(hooked):
    """Issue 14 (9): a 20k-key metrics.json made `git commit` take 12 s (200k keys: > 120 s), and a
    6-line YAML alias bomb in params.yaml gave 1.1M params and a 70 s commit. Keys are capped
    (gitml.hooks.maxkeys, 1000), values once aliases are expanded (200k), file sizes (10 MB) and nesting, each with a
    one-line warning; the commit stands and the rest is logged."""
    (hooked / "metrics.json").write_text(json.dumps({f"m{i}": i for i in range(200_000)}))
    (hooked / "params.yaml").write_text(BOMB)
    (hooked / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    git(hooked, "config", "gitml.hooks.metrics", "metrics.json,deep.json")
    git(hooked, "add", ".")
    out = commit(hooked, "a generated metrics file and a bomb")
    warnings = [ln for ln in out.stderr.splitlines() if "warning" in ln]
    assert any("metrics.json: more than 1000 metrics" in w for w in warnings), out.stderr
    assert any("params.yaml: more than 200000 values once its YAML aliases are expanded" in w for w in warnings), out.stderr
    assert any("deep.json: nested too deeply" in w for w in warnings), out.stderr
    assert len(warnings) == 3, out.stderr
    [run] = runs(hooked)
    assert len(run["data"]["metrics"]) == 1000 and run["data"]["params"] == {}
    git(hooked, "config", "gitml.hooks.maxkeys", "5")
    (hooked / "params.yaml").write_text("\n".join(f"p{i}: {i}" for i in range(10)) + "\n")
    (hooked / "metrics.json").write_text("x" * (11 * 1024 * 1024))
    git(hooked, "add", ".")
    out = commit(hooked, "maxkeys 5")
    assert "params.yaml: more than 5 params" in out.stderr and "metrics.json: 11534336 bytes" in out.stderr
    run = next(r for r in runs(hooked) if r["data"]["params"])
    assert sorted(run["data"]["params"]) == ["p0", "p1", "p2", "p3", "p4"]
