"""Everything that arrives by ``gitml pull`` or a plain ``git fetch`` is hostile (issue 14).

An attacker with push access to the team's remote crafts run commits with
plain git: every field of run.json, params.json, tags.json, artifacts.json,
clock.json and the metric chunks gets wrong types, wrong shapes, huge values,
traversal strings and control characters; refs point at blobs and trees;
notes, experiments and registry tags are garbage too. One legitimate run and
a sentinel file outside every repository sit beside them.

The victim must come out with a one-line warning naming each bad run, the
rest of the repository working (pull, runs list, search_runs, runs show,
artifacts download, every viewer route, models list/show), and nothing
outside the repository read or written:

- through ``gitml pull`` the bad runs are never taken (the report lists them
  under ``rejected``);
- through a plain ``git fetch`` they are local refs: every reader skips them
  with a warning, and asking for one by id is a clear one-line error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser import isolated_env
from tests.conftest import git_run_ids, run_rev

SECRET = f"TOP-SECRET-{uuid.uuid4().hex}"


# -- crafting run commits with plain git objects ---------------------------------------------------

def _write_tree(repo: Any, files: dict[str, bytes | dict]) -> Any:
    """A tree from {name: bytes (a blob) or dict (a subtree)}."""
    import pygit2

    builder = repo.TreeBuilder()
    for name, content in sorted(files.items()):
        if isinstance(content, dict):
            builder.insert(name, _write_tree(repo, content), pygit2.enums.FileMode.TREE)
        else:
            builder.insert(name, repo.create_blob(content), pygit2.enums.FileMode.BLOB)
    return builder.write()


def _nest(flat: dict[str, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, data in flat.items():
        node = out
        *dirs, name = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data
    return out


@dataclass
class Case:
    """One hostile run: how to damage a valid run's files (or what its ref points at)."""

    name: str
    mutate: Callable[[dict[str, Any], str], dict[str, Any]]
    target: str = "commit"  # or "blob", "tree": what the run ref points at

    @property
    def id(self) -> str:
        return self.name


def _json(files: dict[str, Any], name: str) -> Any:
    return json.loads(files[name])


def set_field(name: str, key: str, value: Any) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def mutate(files: dict[str, Any], run_id: str) -> dict[str, Any]:
        data = _json(files, name)
        data[key] = value
        files[name] = json.dumps(data).encode()
        return files
    return mutate


class Subtree(dict):
    """A directory where a file belongs."""


def set_file(name: str, content: Any) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def mutate(files: dict[str, Any], run_id: str) -> dict[str, Any]:
        if isinstance(content, (bytes, Subtree)):
            files[name] = dict(content) if isinstance(content, Subtree) else content
        else:
            files[name] = json.dumps(content).encode()
        return files
    return mutate


def drop_file(name: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def mutate(files: dict[str, Any], run_id: str) -> dict[str, Any]:
        files.pop(name, None)
        return files
    return mutate


def set_source(key: str, value: Any) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def mutate(files: dict[str, Any], run_id: str) -> dict[str, Any]:
        data = _json(files, "run.json")
        data["source"][key] = value
        files["run.json"] = json.dumps(data).encode()
        return files
    return mutate


def set_summary(value: Any) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    return set_field("run.json", "summary", value)


def traversal(levels: int = 40) -> str:
    return "../" * levels + SECRET_PATH.as_posix().lstrip("/")


SECRET_PATH = Path("/nonexistent")  # set by the fixture: a file outside every repository
DEEP = b"[" * 200_000 + b"]" * 200_000
POINT = {"value": 1.0, "step": 0, "timestamp": 1}

CASES = [
    # run.json
    Case("run-not-json", set_file("run.json", b"not json")),
    Case("run-array", set_file("run.json", [1, 2, 3])),
    Case("run-null", set_file("run.json", None)),
    Case("run-deeply-nested", set_file("run.json", DEEP)),
    Case("run-huge-int", set_file("run.json", b'{"run_id": ' + b"9" * 5000 + b"}")),
    Case("run-not-utf8", set_file("run.json", b'{"run_id": "\xff\xfe"}')),
    Case("run-missing", drop_file("run.json")),
    Case("run-is-a-directory", set_file("run.json", Subtree({"x": b"1"}))),
    Case("run-id-missing", set_field("run.json", "run_id", None)),
    Case("run-id-other-run", set_field("run.json", "run_id", "f" * 32)),
    Case("run-id-traversal", set_field("run.json", "run_id", "../../../../etc")),
    Case("experiment-traversal", set_field("run.json", "experiment_id", "../../../etc")),
    Case("experiment-int", set_field("run.json", "experiment_id", 7)),
    Case("status-unknown", set_field("run.json", "status", "PWNED")),
    Case("status-list", set_field("run.json", "status", ["FINISHED"])),
    Case("start-time-text", set_field("run.json", "start_time", "yesterday")),
    Case("start-time-negative", set_field("run.json", "start_time", -5)),
    Case("start-time-float", set_field("run.json", "start_time", 1e300)),
    Case("start-time-bool", set_field("run.json", "start_time", True)),
    Case("start-time-2-70", set_field("run.json", "start_time", 2**70)),
    Case("end-time-text", set_field("run.json", "end_time", "x")),
    Case("lifecycle-unknown", set_field("run.json", "lifecycle_stage", "purged")),
    Case("lifecycle-time-text", set_field("run.json", "lifecycle_time", "x")),
    Case("run-name-object", set_field("run.json", "run_name", {"a": 1})),
    Case("run-name-huge", set_field("run.json", "run_name", "n" * 2_000_000)),
    Case("user-list", set_field("run.json", "user_id", ["root"])),
    Case("parent-traversal", set_field("run.json", "parent_run_id", "../../x")),
    Case("source-string", set_field("run.json", "source", "HEAD")),
    Case("source-commit-traversal", set_source("commit", "../../../etc/passwd")),
    Case("source-head-number", set_source("head", 12)),
    Case("source-dirty-text", set_source("dirty", "yes")),
    Case("source-skipped-text", set_source("skipped", "x")),
    Case("summary-list", set_summary([1, 2])),
    Case("summary-key-traversal", set_summary({"../../x": POINT})),
    Case("summary-key-control", set_summary({"loss\x1b[2J": POINT})),
    Case("summary-value-text", set_summary({"loss": {"value": "abc", "step": 0, "timestamp": 1}})),
    Case("summary-step-text", set_summary({"loss": {"value": 1.0, "step": "0", "timestamp": 1}})),
    Case("summary-point-null", set_summary({"loss": None})),
    # params.json
    Case("params-not-json", set_file("params.json", b"{{{")),
    Case("params-array", set_file("params.json", [1, 2, 3])),
    Case("params-number-value", set_file("params.json", {"alpha": 1})),
    Case("params-null-value", set_file("params.json", {"alpha": None})),
    Case("params-key-traversal", set_file("params.json", {"../x": "1"})),
    Case("params-key-empty", set_file("params.json", {"": "1"})),
    Case("params-key-control", set_file("params.json", {"a\nb": "1"})),
    Case("params-value-huge", set_file("params.json", {"alpha": "v" * 1_000_000})),
    Case("params-deep", set_file("params.json", DEEP)),
    # tags.json
    Case("tags-array", set_file("tags.json", ["a"])),
    Case("tags-object-value", set_file("tags.json", {"mlflow.runName": {"x": 1}})),
    Case("tags-key-traversal", set_file("tags.json", {"../../x": "1"})),
    Case("tags-value-huge", set_file("tags.json", {"note": "t" * 1_000_000})),
    # artifacts.json
    Case("artifact-md5-traversal", lambda f, r: set_file("artifacts.json", {"a.txt": {"md5": traversal(), "size": 8}})(f, r)),
    Case("artifact-md5-absolute", lambda f, r: set_file("artifacts.json", {"a.txt": {"md5": str(SECRET_PATH), "size": 8}})(f, r)),
    Case("artifact-md5-upper", set_file("artifacts.json", {"a.txt": {"md5": "A" * 32, "size": 8}})),
    Case("artifact-md5-dir-for-file", set_file("artifacts.json", {"a.txt": {"md5": "0" * 32 + ".dir", "size": 8}})),
    Case("artifact-path-traversal", set_file("artifacts.json", {"../../outside.txt": {"md5": "0" * 32, "size": 8}})),
    Case("artifact-path-absolute", set_file("artifacts.json", {"/etc/passwd": {"md5": "0" * 32, "size": 8}})),
    Case("artifact-path-backslash", set_file("artifacts.json", {"a\\..\\..\\x": {"md5": "0" * 32, "size": 8}})),
    Case("artifact-path-nul", set_file("artifacts.json", {"a\x00b": {"md5": "0" * 32, "size": 8}})),
    Case("artifact-size-negative", set_file("artifacts.json", {"a.txt": {"md5": "0" * 32, "size": -1}})),
    Case("artifact-size-text", set_file("artifacts.json", {"a.txt": {"md5": "0" * 32, "size": "8"}})),
    Case("artifact-entry-string", set_file("artifacts.json", {"a.txt": "0" * 32})),
    Case("artifacts-array", set_file("artifacts.json", [])),
    # clock.json
    Case("clock-text", set_file("clock.json", "yesterday")),
    Case("clock-section-unknown", set_file("clock.json", {"params": {}})),
    Case("clock-time-text", set_file("clock.json", {"tags": {"x": "now"}})),
    # inputs.json (datasets)
    Case("inputs-object", set_file("inputs.json", {"dataset": {}})),
    Case("inputs-entry-extra-key", set_file("inputs.json", [{"dataset": {"name": "d", "digest": "1"}, "tags": {},
                                                              "x": 1}])),
    Case("inputs-name-huge", set_file("inputs.json", [{"dataset": {"name": "n" * 1_000_000, "digest": "1"},
                                                       "tags": {}}])),
    Case("inputs-deep", set_file("inputs.json", DEEP)),
    # metric chunks
    Case("metric-chunk-garbage", set_file("metrics/loss/000000.tsv", b"garbage\n")),
    Case("metric-chunk-two-fields", set_file("metrics/loss/000000.tsv", b"1\t2\n")),
    Case("metric-chunk-text-value", set_file("metrics/loss/000000.tsv", b"0\t1\tabc\n")),
    Case("metric-chunk-binary", set_file("metrics/loss/000000.tsv", b"\xff\xfe\x00\x01\n")),
    Case("metric-chunk-json-injection", set_file("metrics/loss/000000.tsv", b'0\t1\t1],"x":[2\n')),
    # what the ref points at
    Case("ref-to-blob", lambda f, r: f, target="blob"),
    Case("ref-to-tree", lambda f, r: f, target="tree"),
]
# Cases whose damage is only in the metric chunks: the run itself reads fine; its history does not.
CHUNK_CASES = {c.name for c in CASES if c.name.startswith("metric-chunk")}


@dataclass
class Site:
    env: dict[str, str]
    bare: Path
    attacker: Path
    victim: Path  # took the attack through `gitml pull`
    fetched: Path  # took it through a plain `git fetch`
    good_run: str  # the victim's own run
    their_good_run: str  # a legitimate run the attacker pushed too
    bad: dict[str, str]  # case name -> run id
    outside: Path  # a directory outside every repository
    pull: subprocess.CompletedProcess
    pull_report: dict


def _sh(cwd: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


def _gitml(cwd: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _sh(cwd, env, sys.executable, "-m", "gitml", *args, check=check)


LOG_GOOD = r"""
import sys, gitml
with gitml.start_run(run_name=sys.argv[1]) as r:
    gitml.log_param("alpha", "0.5")
    gitml.set_tag("team", "a")
    for i in range(3):
        gitml.log_metric("loss", 1.0 / (i + 1), step=i)
    gitml.log_text("hello", "a.txt")
    gitml.log_text("flavors: {}\n", "model/MLmodel")
print(r.info.run_id)
"""


def _craft(attacker: Path, env: dict[str, str], template: str) -> dict[str, str]:
    """One run ref per case in the attacker's clone, built from the template run's files."""
    import pygit2

    repo = pygit2.Repository(str(attacker))
    base = repo[run_rev(attacker, template)]
    flat: dict[str, bytes] = {}

    def walk(tree: Any, prefix: str) -> None:
        for entry in tree:
            if entry.type_str == "tree":
                walk(repo[entry.id], prefix + entry.name + "/")
            else:
                flat[prefix + entry.name] = repo[entry.id].data

    walk(base.tree, "")
    sig = pygit2.Signature("Mallory", "mallory@example.com")
    bad = {}
    for case in CASES:
        run_id = uuid.uuid4().hex
        files: dict[str, Any] = dict(flat)
        info = json.loads(files["run.json"])
        info["run_id"] = run_id
        files["run.json"] = json.dumps(info).encode()
        files = case.mutate(files, run_id)
        tree = _write_tree(repo, _nest(files))
        if case.target == "blob":
            oid = repo.create_blob(b"not a run")
        elif case.target == "tree":
            oid = tree
        else:
            oid = repo.create_commit(None, sig, sig, f"gitml run {run_id}: FINISHED\n", tree, base.parent_ids)
        repo.references.create(f"refs/gitml/runs/{run_id}", oid)
        bad[case.name] = run_id
    # Experiments, notes and registry tags of the attacker's making.
    exp_tree = _write_tree(repo, {"experiment.json": b'{"experiment_id": "../../x", "name": 5}'})
    exp = repo.create_commit(None, sig, sig, "evil experiment\n", exp_tree, [])
    repo.references.create("refs/gitml/experiments/1234", exp)
    repo.references.create("refs/gitml/evil", exp)  # not a ref gitml writes
    head = str(repo.head.target)
    note = ("run " + "e" * 32 + " FINISHED \"forged\"\nnot a run line \x1b[2J\n" + "run x\n" + "\u2028" * 3
            + "run " + "d" * 32 + " KILLED \"" + "z" * 5000 + "\"\n")
    notes_tree = _write_tree(repo, {head: note.encode()})
    old_notes = repo.references.get("refs/notes/gitml")
    parents = [old_notes.target] if old_notes is not None else []
    notes = repo.create_commit(None, sig, sig, "notes\n", notes_tree, parents)
    repo.references.create("refs/notes/gitml", notes, force=True)
    target = str(repo.revparse_single(f"refs/gitml/runs/{bad['artifact-md5-traversal']}").id)
    for name, message in [
        ("evil@v1.0.0", f"evil\n\nGitml-Run: {bad['artifact-md5-traversal']}\nGitml-Model-Path: model\n"),
        ("evil2@v1.0.0", f"x\n\nGitml-Run: ../../etc\nGitml-Model-Path: {traversal()}\n"),
        ("evil#production#1", "promote\n"),
    ]:
        raw = (f"object {target}\ntype commit\ntag {name}\ntagger Mallory <m@x> 1700000000 +0000\n\n{message}")
        oid = repo.odb.write(pygit2.enums.ObjectType.TAG, raw.encode())
        repo.references.create(f"refs/tags/{name}", oid)
    blob = repo.create_blob(b"not a commit")
    raw = f"object {blob}\ntype blob\ntag blobby@v1.0.0\ntagger M <m@x> 1700000001 +0000\n\nblob\n"
    repo.references.create("refs/tags/blobby@v1.0.0", repo.odb.write(pygit2.enums.ObjectType.TAG, raw.encode()))
    anchor = str(repo.create_blob(b"gitml-model evil\n"))  # the model's metadata log (registry/metadata.py)
    metadata = (b'not json\n{"op": "describe", "time": "now"}\n{"op": "tag", "model": "other", "time": 1}\n'
                b'{"op": "rename", "model": "evil", "to": "../HEAD", "time": 2}\n'
                b'{"op": "tag", "model": "evil", "key": "a\\u001b", "value": 5, "time": 3}\n'
                + b"[" * 50_000 + b"\n")
    comments = _write_tree(repo, {str(repo.references["refs/tags/evil@v1.0.0"].target):
                                  b'not json\n{"text": 5}\n[1,2]\n{"text": "\\u001b[2Jhi", "author": {}}\n',
                                  anchor: metadata})
    repo.references.create("refs/notes/gitml-registry", repo.create_commit(None, sig, sig, "c\n", comments, []))
    return bad


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    global SECRET_PATH
    root = tmp_path_factory.mktemp("hostile")
    env = isolated_env(root / "home")
    env["GITML_FLUSH_INTERVAL"] = "0"
    outside = root / "outside"
    outside.mkdir()
    SECRET_PATH = outside / "secret.txt"
    SECRET_PATH.write_text(SECRET)

    bare = root / "remote.git"
    _sh(root, env, "git", "init", "-q", "--bare", str(bare))
    attacker = root / "attacker"
    _sh(root, env, "git", "clone", "-q", str(bare), str(attacker))
    (attacker / "train.py").write_text("print(1)\n")
    _sh(attacker, env, "git", "add", ".")
    _sh(attacker, env, "git", "commit", "-qm", "init")
    _sh(attacker, env, "git", "push", "-q", "origin", "HEAD:main")
    victim = root / "victim"
    _sh(root, env, "git", "clone", "-q", "-b", "main", str(bare), str(victim))
    fetched = root / "fetched"
    _sh(root, env, "git", "clone", "-q", "-b", "main", str(bare), str(fetched))
    for clone in (victim, fetched):
        _gitml(clone, env, "remote", "add", "-d", "store", str(root / "dvcstore"))

    good = _sh(victim, env, sys.executable, "-c", LOG_GOOD, "mine").stdout.strip()
    _gitml(victim, env, "models", "register", "mine", f"runs:/{good}/model")
    theirs = _sh(attacker, env, sys.executable, "-c", LOG_GOOD, "theirs").stdout.strip()
    good_fetched = _sh(fetched, env, sys.executable, "-c", LOG_GOOD, "mine").stdout.strip()
    _gitml(fetched, env, "models", "register", "mine", f"runs:/{good_fetched}/model")
    bad = _craft(attacker, env, theirs)
    _sh(attacker, env, "git", "push", "-q", "--force", "origin", "refs/gitml/*:refs/gitml/*",
        "refs/notes/*:refs/notes/*", "refs/tags/*:refs/tags/*")

    pull = _gitml(victim, env, "pull", "--json", check=False)
    _sh(fetched, env, "git", "fetch", "-q", "origin", "+refs/gitml/*:refs/gitml/*", "+refs/notes/*:refs/notes/*",
        "+refs/tags/*:refs/tags/*")
    report = json.loads(pull.stdout) if pull.returncode == 0 else {}
    return Site(env, bare, attacker, victim, fetched, good_fetched, theirs, bad, outside, pull, report)


@pytest.fixture
def in_site(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """This process pointed at the site's environment (HOME, git config), caches reset after."""
    for key in ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_NOSYSTEM", "GITML_FLUSH_INTERVAL"):
        monkeypatch.setenv(key, site.env[key])
    yield site
    from tests.conftest import close_tracking

    close_tracking()


def _outside_untouched(site: Site) -> None:
    assert sorted(p.name for p in site.outside.iterdir()) == ["secret.txt"]
    assert SECRET_PATH.read_text() == SECRET


def _local_runs(repo: Path, env: dict[str, str]) -> set[str]:
    return set(git_run_ids(repo))


# -- through gitml pull ---------------------------------------------------------------------------

def test_pull_takes_the_good_run_and_rejects_every_bad_one_with_a_warning(site: Site):
    assert site.pull.returncode == 0, site.pull.stderr
    local = _local_runs(site.victim, site.env)
    assert site.their_good_run in local and site.good_run not in site.bad.values()
    assert not local & set(site.bad.values()), "a malformed run was taken by pull"
    rejected = site.pull_report["rejected"]
    for name, run_id in site.bad.items():
        assert f"refs/gitml/runs/{run_id}" in rejected, name
        warnings = [ln for ln in site.pull.stderr.splitlines() if run_id in ln]
        assert len(warnings) == 1, (name, site.pull.stderr[-2000:])
    assert "refs/gitml/experiments/1234" in rejected and "refs/gitml/evil" in rejected
    assert SECRET not in site.pull.stdout + site.pull.stderr
    _outside_untouched(site)


def test_after_pull_everything_works(site: Site):
    listed = json.loads(_gitml(site.victim, site.env, "runs", "list", "--json", "-n", "1000").stdout)
    assert {r["info"]["run_name"] for r in listed} == {"mine", "theirs"}
    shown = _gitml(site.victim, site.env, "runs", "show", site.their_good_run)
    assert "theirs" in shown.stdout
    _gitml(site.victim, site.env, "models", "list")
    _gitml(site.victim, site.env, "reindex")
    note = _sh(site.victim, site.env, "git", "notes", "--ref=gitml", "show", "HEAD").stdout
    assert "\x1b" not in note and "not a run line" not in note and "run x" not in note
    assert all(line.startswith("run ") for line in note.split("\n") if line)
    # pushing on does not spread what was refused
    again = json.loads(_gitml(site.victim, site.env, "push", "--json").stdout)
    assert not set(again["runs_sent"]) & set(site.bad.values())
    _outside_untouched(site)


# -- through a plain git fetch ----------------------------------------------------------------------

def test_fetched_bad_runs_cost_one_warning_each_and_runs_list_works(site: Site):
    out = _gitml(site.fetched, site.env, "runs", "list", "--json", "-n", "1000")
    listed = {r["info"]["run_id"] for r in json.loads(out.stdout)}
    assert site.good_run in listed and site.their_good_run in listed
    assert not listed & (set(site.bad.values()) - {site.bad[n] for n in CHUNK_CASES})
    for name, run_id in site.bad.items():
        if name in CHUNK_CASES:
            continue  # the run reads fine; only its metric history is damaged
        lines = [ln for ln in out.stderr.splitlines() if run_id in ln]
        assert len(lines) == 1 and "malformed" in lines[0], (name, out.stderr[-3000:])
    assert SECRET not in out.stdout + out.stderr
    # a second command does not need to say it again: the index remembers the bad commits
    again = _gitml(site.fetched, site.env, "runs", "list", "-n", "5")
    assert again.returncode == 0


def test_search_and_commands_that_read_every_run_keep_working(in_site: Site):
    import gitml
    from gitml.tracking import runs

    repo = runs.open_repo(in_site.fetched)
    gitml.set_tracking_uri(in_site.fetched)
    df = gitml.search_runs(search_all_experiments=True, filter_string="params.alpha = '0.5'")
    assert in_site.good_run in set(df["run_id"])
    assert runs.reindex(repo)[0] >= 2
    for cmd in (["log", "-n", "3"], ["models", "list"], ["experiments", "list"], ["diff", "HEAD", "HEAD"]):
        out = _gitml(in_site.fetched, in_site.env, *cmd, check=False)
        assert out.returncode == 0, (cmd, out.stderr)
        assert "Traceback" not in out.stderr and "unexpected" not in out.stderr
    _outside_untouched(in_site)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_run_asked_for_by_id_is_a_one_line_error(in_site: Site, case: Case, tmp_path: Path):
    from click.testing import CliRunner

    from gitml.cli import main

    run_id = in_site.bad[case.name]
    cli = CliRunner()
    repo = ["-C", str(in_site.fetched)]
    shown = cli.invoke(main, [*repo, "runs", "show", run_id])
    if case.name in CHUNK_CASES:
        assert shown.exit_code == 0, shown.output
        history = cli.invoke(main, [*repo, "runs", "show", run_id, "--json"])
        assert history.exit_code == 0
    else:
        assert shown.exit_code == 1, shown.output
        assert shown.stderr.count("\n") == 1 and shown.stderr.startswith("Error: "), shown.stderr
        assert run_id in shown.stderr or "not found" in shown.stderr
    dest = tmp_path / "dl"
    got = cli.invoke(main, [*repo, "artifacts", "download", run_id, "a.txt", "-d", str(dest)])
    assert SECRET not in got.output
    if case.name not in CHUNK_CASES:
        assert got.exit_code == 1 and got.stderr.startswith("Error: ") and got.stderr.count("\n") == 1, got.stderr
    for path in dest.rglob("*") if dest.exists() else []:
        assert path.resolve().is_relative_to(dest.resolve())
    _outside_untouched(in_site)


VIEWER_ROUTES = [
    "/runs/{bad}", "/api/runs/{bad}", "/api/runs/{bad}/metrics/loss", "/api/runs/{bad}/artifacts",
    "/api/runs/{bad}/artifact?path=a.txt", "/api/runs/{bad}/artifact?path=a.txt&inline=1",
    "/runs/{bad}/artifacts?path=a.txt", "/compare?run={bad}&run={good}", "/api/compare?run={bad}&run={good}",
]


@pytest.fixture(scope="module")
def viewer(site: Site) -> Any:
    from gitml.webview import LOOPBACK_HOSTS, create_app

    old = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_NOSYSTEM")}
    os.environ.update({k: site.env[k] for k in old})
    try:
        yield create_app(site.fetched, allowed_hosts=LOOPBACK_HOSTS).test_client()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_viewer_route_of_a_bad_run_answers_without_a_server_error(site: Site, viewer: Any, case: Case):
    bad = site.bad[case.name]
    for route in VIEWER_ROUTES:
        url = route.format(bad=bad, good=site.good_run)
        r = viewer.get(url)
        body = r.get_data(as_text=True)
        assert r.status_code < 500, (url, r.status_code, body[:300])
        assert SECRET not in body, url
    _outside_untouched(site)


def test_viewer_pages_over_all_runs_work(site: Site, viewer: Any):
    for url in ("/", "/runs", "/runs?view=all", "/api/runs", "/api/runs.csv", "/commits", "/api/commits",
                "/api/experiments", "/models", "/api/models", "/models/evil", "/api/models/evil", "/diff",
                "/api/branches", f"/runs/{site.good_run}", f"/api/runs/{site.good_run}/metrics/loss"):
        r = viewer.get(url)
        assert r.status_code < 500, (url, r.status_code, r.get_data(as_text=True)[:300])
        assert SECRET not in r.get_data(as_text=True)
    page = viewer.get("/runs").get_data(as_text=True)
    assert site.good_run[:8] in page and site.their_good_run[:8] in page
    ok = viewer.get(f"/api/runs/{site.good_run}/artifact?path=a.txt")
    assert ok.status_code == 200 and ok.data == b"hello"


def test_hostile_registry_tags_and_comments(in_site: Site):
    import gitml
    from gitml.errors import GitmlError

    for cmd in (["models", "list"], ["models", "show", "evil"], ["models", "show", "evil2"],
                ["models", "history", "evil"], ["models", "show", "blobby"], ["models", "show", "mine"]):
        out = _gitml(in_site.fetched, in_site.env, *cmd, check=False)
        assert out.returncode in (0, 1), (cmd, out.stderr)
        assert "Traceback" not in out.stderr and "unexpected" not in out.stderr, (cmd, out.stderr)
        assert "\x1b" not in out.stdout and SECRET not in out.stdout
        if out.returncode == 1:
            assert out.stderr.startswith("Error: ") and out.stderr.count("\n") == 1, (cmd, out.stderr)
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=f"gitml:{in_site.fetched}", registry_uri=f"gitml:{in_site.fetched}")
    names = {m.name for m in mlflow_client.search_registered_models()}
    assert "mine" in names
    assert mlflow_client.get_registered_model("mine").name == "mine"
    gitml.set_tracking_uri(in_site.fetched)
    for uri in ("models:/evil/1", "models:/evil2/1", "models:/evil/production", "models:/blobby/1"):
        with pytest.raises(GitmlError):
            gitml.pyfunc.load_model(uri)
    _outside_untouched(in_site)


def test_a_fresh_clone_pulls_only_clean_notes_and_comments(site: Site, tmp_path: Path):
    """Notes of a clone with none of its own: forged, control-character and malformed lines are
    not taken, nor registry comments that are not JSON objects; well-formed lines are."""
    fresh = tmp_path / "fresh"
    _sh(tmp_path, site.env, "git", "clone", "-q", "-b", "main", str(site.bare), str(fresh))
    out = _gitml(fresh, site.env, "pull", "--json")
    received = set(json.loads(out.stdout)["runs_received"])
    assert site.their_good_run in received and not received & set(site.bad.values())
    note = _sh(fresh, site.env, "git", "notes", "--ref=gitml", "show", "HEAD").stdout
    assert "\x1b" not in note and "not a run line" not in note and "run x" not in note and "z" * 5000 not in note
    assert all(line.startswith("run ") for line in note.split("\n") if line)
    comments = _sh(fresh, site.env, "git", "log", "-1", "--format=%N", "--notes=gitml-registry",
                   "refs/tags/evil@v1.0.0", check=False).stdout
    assert "not json" not in comments and "[1,2]" not in comments


def test_push_does_not_spread_fetched_bad_runs(site: Site, tmp_path: Path):
    """A clone that took the attack with plain git fetch pushes on only what is well-formed."""
    onward = tmp_path / "onward.git"
    _sh(tmp_path, site.env, "git", "init", "-q", "--bare", str(onward))
    _sh(site.fetched, site.env, "git", "remote", "add", "onward", str(onward))
    out = _gitml(site.fetched, site.env, "push", "onward", "--json", check=False)
    report = json.loads(out.stdout)
    sent = set(report["runs_sent"])
    assert site.good_run in sent and not sent & (set(site.bad.values()) - {site.bad[n] for n in CHUNK_CASES})
    assert f"refs/gitml/runs/{site.bad['run-not-json']}" in report["rejected"]
    assert "refs/gitml/evil" in report["rejected"]
    remote_runs = _sh(onward, site.env, "git", "for-each-ref", "--format=%(refname)", "refs/gitml/").stdout
    assert site.bad["artifact-md5-traversal"] not in remote_runs and "refs/gitml/evil" not in remote_runs


def test_gc_over_fetched_bad_runs_deletes_nothing_they_might_name(site: Site, tmp_path: Path):
    """`gitml gc` reads every run, the 75 crafted ones included: no crash, no path from a manifest
    followed, the good runs' artifacts kept; a manifest it cannot read makes it refuse."""
    import shutil

    clone = tmp_path / "clone"
    shutil.copytree(site.fetched, clone, symlinks=True)
    cache = clone / ".git/gitml/cache/files/md5"
    named_in_capitals = cache / "aa" / ("a" * 30)  # case artifact-md5-upper names "AAAA..."
    orphan = cache / "00" / ("1" * 30)
    for path in (named_in_capitals, orphan):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (1, 1))
    before = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    out = _gitml(clone, site.env, "gc", "--force", "--keep-recent", "0", "--json", check=False)
    assert "Traceback" not in out.stderr and "unexpected" not in out.stderr, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert len(report["malformed"]) >= 8  # every artifacts.json case, each reported
    assert out.returncode == 0 and report["refused"] == [], report["refused"]
    assert [r["path"] for r in report["stores"][0]["removed"]] == [str(orphan)]
    assert named_in_capitals.exists()  # named (in capitals) by a malformed manifest
    assert sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file()) == \
        [p for p in before if p != orphan.relative_to(cache)]
    # A ledger entry naming a commit that never arrived: what that run references is unknown.
    # Its shard is replaced by one holding only it, so not the shard of the run downloaded below
    # (its id is random: one time in 16 it began with "f", and the download found no run).
    rid = next(c * 32 for c in "fedcba9876543210" if not site.good_run.startswith(c))
    def mktree(listing: str) -> str:
        return subprocess.run(["git", "mktree", "--missing"], cwd=clone, env=site.env, input=listing, text=True,
                              capture_output=True, check=True).stdout.strip()

    missing = "9" * 40
    entry = mktree(f"160000 commit {missing}\t{rid[2:]}\n")
    top = mktree(f"040000 tree {entry}\t{rid[:2]}\n")
    ledger = _sh(clone, site.env, "git", "commit-tree", top, "-m", "damaged ledger").stdout.strip()
    _sh(clone, site.env, "git", "update-ref", f"refs/gitml/ledger/{rid[0]}", ledger)
    out = _gitml(clone, site.env, "gc", "--force", "--keep-recent", "0", "--json", check=False)
    report = json.loads(out.stdout)
    assert out.returncode == 1 and len(report["refused"]) == 1 and rid in report["refused"][0]
    dl = tmp_path / "dl"
    _gitml(clone, site.env, "artifacts", "download", site.good_run, "-d", str(dl))
    assert any(dl.rglob("*"))
    _outside_untouched(site)
