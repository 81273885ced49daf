"""Team sync with real components: a bare git remote, a local-directory DVC remote,
and an S3-compatible server (moto, on 127.0.0.1) as a second DVC remote."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import git, gitml_cli, gitml_invoke, run_python, run_rev

LOG = """
import gitml, sys
name = sys.argv[1]
with gitml.start_run(run_name=name) as run:
    gitml.log_param("who", name)
    for i in range(3):
        gitml.log_metric("loss", 1.0 / (i + 1), step=i)
    with open(name + ".bin", "wb") as f:
        f.write(name.encode() * 1000)
    gitml.log_artifact(name + ".bin", "out")
print(run.info.run_id)
"""


def log_run(repo: Path, name: str) -> str:
    out = subprocess.run([sys.executable, "-c", LOG, name], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def runs(repo: Path) -> dict[str, dict]:
    data = json.loads(gitml_invoke(repo, "runs", "list", "--json", "-n", "1000").stdout)
    return {r["info"]["run_id"]: r for r in data}


@pytest.fixture
def team(tmp_path: Path):
    """A bare remote, clone A with one commit pushed, clone B cloned after; both know the DVC remote."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    a = tmp_path / "A"
    git(tmp_path, "clone", "-q", str(bare), str(a))
    (a / "train.py").write_text("print(1)\n")
    (a / ".gitignore").write_text("*.bin\n")
    git(a, "add", ".")
    git(a, "commit", "-qm", "init")
    git(a, "push", "-q", "origin", "HEAD:main")
    b = tmp_path / "B"
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(b))
    store = tmp_path / "dvcstore"
    for clone in (a, b):
        gitml_invoke(clone, "remote", "add", "-d", "store", str(store))
    return a, b, bare, store


def test_push_pull_round_trip_both_ways(team, tmp_path):
    a, b, bare, store = team
    ra = log_run(a, "alice")
    out = gitml_invoke(a, "push", "--json").stdout
    report = json.loads(out)
    assert report["runs_sent"] == [ra] and report["artifacts_copied"] == 1
    pulled = json.loads(gitml_invoke(b, "pull", "--json").stdout)
    assert pulled["runs_received"] == [ra] and pulled["artifacts_missing"] == {}
    got = runs(b)[ra]
    assert got["data"]["params"] == {"who": "alice"} and got["data"]["metrics"]["loss"] == pytest.approx(1 / 3)
    dl = tmp_path / "dl"
    gitml_invoke(b, "artifacts", "download", ra, "out/alice.bin", "-d", str(dl))
    assert (dl / "out" / "alice.bin").read_bytes() == (a / "alice.bin").read_bytes()

    rb = log_run(b, "bob")
    gitml_invoke(b, "push")
    gitml_invoke(a, "pull")
    assert set(runs(a)) == {ra, rb}
    # the same commit got a run on each side: the notes were merged, not overwritten
    note = git(a, "notes", "--ref=gitml", "show", "HEAD")
    assert f"run {ra}" in note and f"run {rb}" in note
    git(a, "fsck", "--strict", "--no-dangling")


def test_one_push_of_many_runs_equals_pushing_them_one_by_one(team, tmp_path):
    """The batched push (every ref in one `git push`) leaves a remote that a clone pulls
    into the same runs, refs and notes as pushing after each run."""
    a, b, bare, store = team
    batch = tmp_path / "batch.git"
    git(tmp_path, "clone", "-q", "--bare", str(bare), str(batch))
    git(a, "remote", "add", "batch", str(batch))
    ids = []
    for name in ("r1", "r2", "r3", "r4"):
        ids.append(log_run(a, name))
        report = json.loads(gitml_invoke(a, "push", "--json").stdout)
        assert report["runs_sent"] == [ids[-1]]
    report = json.loads(gitml_invoke(a, "push", "batch", "--json").stdout)
    assert sorted(report["runs_sent"]) == sorted(ids)

    def gitml_refs(remote: Path) -> str:
        return git(remote, "for-each-ref", "--format=%(objectname) %(refname)", "refs/gitml", "refs/notes")

    assert gitml_refs(batch) == gitml_refs(bare) and "refs/gitml/ledger/" in gitml_refs(bare)
    pulled = {}
    for remote in (bare, batch):
        clone = tmp_path / f"from-{remote.stem}"
        git(tmp_path, "clone", "-q", "-b", "main", str(remote), str(clone))
        gitml_invoke(clone, "remote", "add", "-d", "store", str(store))
        gitml_invoke(clone, "pull")
        pulled[remote] = runs(clone)
        assert sorted(pulled[remote]) == sorted(ids)
    assert pulled[bare] == pulled[batch]


def test_concurrent_notes_on_both_sides_are_merged(team):
    a, b, bare, store = team
    ra = log_run(a, "alice")
    rb = log_run(b, "bob")
    gitml_invoke(a, "push")
    gitml_invoke(b, "push")  # remote notes moved: B fetches, merges and pushes the merge
    gitml_invoke(a, "pull")
    for clone in (a, b):
        note = git(clone, "notes", "--ref=gitml", "show", "HEAD")
        assert f"run {ra}" in note and f"run {rb}" in note, clone
    remote_note = git(bare, "notes", "--ref=gitml", "show", "main")
    assert f"run {ra}" in remote_note and f"run {rb}" in remote_note


def test_run_changed_on_both_sides_is_merged(team):
    a, b, bare, store = team
    ra = log_run(a, "alice")
    gitml_invoke(a, "push")
    gitml_invoke(b, "pull")
    run_python(f"import gitml\ngitml.Client().log_metric('{ra}', 'extra_b', 2.0)\n", b)
    run_python(f"import gitml\ngitml.Client().set_tag('{ra}', 'reviewed', 'yes')\n", a)
    gitml_invoke(a, "push")
    report = json.loads(gitml_invoke(b, "push", "--json").stdout)
    assert report["runs_merged"] == [ra] and report["refs_rejected"] == {}
    gitml_invoke(a, "pull")
    for clone in (a, b):
        run = runs(clone)[ra]
        assert run["data"]["metrics"]["extra_b"] == 2.0 and run["data"]["tags"]["reviewed"] == "yes"
        assert run["data"]["metrics"]["loss"] == pytest.approx(1 / 3)


def test_pull_without_artifacts_on_remote_keeps_the_rest(team, tmp_path):
    a, b, bare, store = team
    ra = log_run(a, "alice")
    # runs reach git but the artifact remote never gets the object (pushed with plain git)
    git(a, "push", "-q", "origin", "refs/gitml/*:refs/gitml/*")
    out = gitml_invoke(b, "pull")
    assert "artifacts not on the artifact remote: out/alice.bin" in out.stderr
    assert ra in runs(b)
    fail = gitml_invoke(b, "artifacts", "download", ra, "out/alice.bin", "-d", str(tmp_path / "x"), check=False)
    assert fail.returncode == 1 and "gitml pull" in fail.stderr


def test_push_is_rerunnable_and_sends_nothing_twice(team):
    a, b, bare, store = team
    log_run(a, "alice")
    first = json.loads(gitml_invoke(a, "push", "--json").stdout)
    again = json.loads(gitml_invoke(a, "push", "--json").stdout)
    assert len(first["runs_sent"]) == 1 and again["runs_sent"] == [] and again["artifacts_copied"] == 0


def test_a_ref_another_push_holds_locked_is_retried(team):
    """A push that meets a remote ref locked by another push (a ``.lock`` file in
    the bare repo, as a push killed with -9 leaves its still-running ``git
    push`` holding it) waits and retries instead of failing."""
    a, b, bare, store = team
    run_id = log_run(a, "alice")
    lock = bare / "refs" / "gitml" / "runs" / f"{run_id}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    # The other push lets go after our first attempt: the remote's pre-receive
    # hook (which runs before refs are locked) removes the lock the second time.
    seen = bare / "seen"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\n[ -e '{seen}' ] && rm -f '{lock}'\ntouch '{seen}'\nexit 0\n")
    hook.chmod(0o755)
    report = json.loads(gitml_invoke(a, "push", "--json").stdout)
    assert report["runs_sent"] == [run_id] and report["refs_rejected"] == {}
    gitml_invoke(b, "pull")
    assert set(runs(b)) == {run_id}


def test_interrupted_push_completes_on_rerun(team):
    """A push killed mid-way (SIGKILL) leaves no damage; the rerun completes."""
    a, b, bare, store = team
    ids = [log_run(a, f"r{i}") for i in range(3)]
    proc = subprocess.Popen([sys.executable, "-m", "gitml", "push"], cwd=a,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30  # kill it once the first artifact reached the remote
    while time.monotonic() < deadline and proc.poll() is None and not any(p.is_file() for p in store.rglob("*")):
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    gitml_invoke(a, "push")
    gitml_invoke(b, "pull")
    assert set(runs(b)) == set(ids)
    # Every object once, each intact. (A kill mid-upload may leave one of the
    # filesystem layer's own ".<random>.tmp" files behind, as with `dvc push`;
    # it is never taken for an object.)
    objects = [p for p in store.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
    assert len(objects) == 3
    for obj in objects:
        assert hashlib.md5(obj.read_bytes()).hexdigest() == obj.parent.name + obj.name


def test_push_without_artifact_remote_is_a_clear_error(tmp_path):
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    a = tmp_path / "A"
    git(tmp_path, "clone", "-q", str(bare), str(a))
    git(a, "commit", "-q", "--allow-empty", "-m", "init")
    log_run(a, "x")
    out = gitml_invoke(a, "push", check=False)
    assert out.returncode == 1 and "gitml remote add" in out.stderr
    assert git(bare, "for-each-ref", "refs/gitml") == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
    pytest.importorskip("moto")
    pytest.importorskip("dvc_s3")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("moto server exited")
            time.sleep(0.05)
    import boto3

    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket="artifacts")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_s3_artifact_remote(team, s3_server, tmp_path, monkeypatch):
    a, b, bare, store = team
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for clone in (a, b):
        gitml_invoke(clone, "remote", "add", "s3", "s3://artifacts/gitml", "-o", f"endpointurl={s3_server}")
    ra = log_run(a, "alice")
    sent = json.loads(gitml_invoke(a, "push", "-r", "s3", "--json").stdout)
    assert sent["artifact_remote"] == "s3" and sent["artifacts_copied"] == 1
    got = json.loads(gitml_invoke(b, "pull", "-r", "s3", "--json").stdout)
    assert got["artifacts_copied"] == 1 and got["artifacts_missing"] == {}
    dl = tmp_path / "dl"
    gitml_invoke(b, "artifacts", "download", ra, "out/alice.bin", "-d", str(dl))
    assert (dl / "out" / "alice.bin").read_bytes() == b"alice" * 1000
    assert not [p for p in store.rglob("*") if p.is_file()]  # nothing went to the local-dir remote


def test_dvc_reads_what_gitml_pushed(team, tmp_path):
    """`dvc pull` of a .dvc file naming the hash gitml recorded gets the file from the remote."""
    a, b, bare, store = team
    ra = log_run(a, "alice")
    gitml_invoke(a, "push")
    c = tmp_path / "C"
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(c))
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "-q"], cwd=c, check=True)
    subprocess.run([dvc, "remote", "add", "-d", "store", str(store)], cwd=c, check=True)
    git(c, "fetch", "-q", "origin", "refs/gitml/*:refs/gitml/*")
    entry = json.loads(git(c, "show", f"{run_rev(c, ra)}:artifacts.json"))["out/alice.bin"]
    (c / "alice.bin.dvc").write_text(f"outs:\n- md5: {entry['md5']}\n  size: {entry['size']}\n  hash: md5\n  path: alice.bin\n")
    out = subprocess.run([dvc, "pull", "alice.bin.dvc"], cwd=c, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (c / "alice.bin").read_bytes() == b"alice" * 1000


def test_pull_by_url_and_late_artifact_remote(team, tmp_path):
    """Pull from a URL (no remote name); artifacts missed by an earlier pull come with a later one."""
    a, b, bare, store = team
    ra = log_run(a, "alice")
    gitml_invoke(a, "push")
    c = tmp_path / "C"
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(c))
    first = json.loads(gitml_invoke(c, "pull", str(bare), "--json").stdout)  # no artifact remote yet
    assert first["runs_received"] == [ra] and first["artifacts_missing"] == {ra: ["out/alice.bin"]}
    gitml_invoke(c, "remote", "add", "-d", "store", str(store))
    second = json.loads(gitml_invoke(c, "pull", str(bare), "--json").stdout)
    assert second["runs_received"] == [] and second["artifacts_copied"] == 1
    assert not [r for r in git(c, "for-each-ref").splitlines() if "gitml-incoming" in r]


def test_merged_status_reaches_the_note(team):
    a, b, bare, store = team
    ra = log_run(a, "alice")
    gitml_invoke(a, "push")
    gitml_invoke(b, "pull")
    gitml_invoke(a, "runs", "delete", ra)
    gitml_invoke(a, "push")
    gitml_invoke(b, "pull")
    assert runs(b) == {}
    assert "[deleted]" in git(b, "notes", "--ref=gitml", "show", "HEAD")


# -- registry tags meeting on sync -----------------------------------------------------------------


def _registry_repo(repo: Path):
    """Two registered versions (gitml's own tags) in ``repo``; the GitRepo and the two commits."""
    from gitml import registry
    from gitml.store.repo import GitRepo

    gr = GitRepo.discover(repo)
    cs = []
    for i in range(2):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")
        cs.append(git(repo, "rev-parse", "HEAD").strip())
        registry.register(gr, "rf", cs[-1], path="model", run_id=None)
    return gr, cs


def _their_tag(gr, name: str, target: str, message: str) -> str:
    """A tag object as another clone wrote it (fetched, no ref yet): its oid."""
    raw = (f"object {target}\ntype commit\ntag {name}\n"
           f"tagger Remote Person <remote@example.com> 1600000000 +0200\n\n{message}")
    out = subprocess.run(["git", "hash-object", "-t", "tag", "-w", "--stdin"], input=raw, cwd=gr.git_dir,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_renumbered_tag_keeps_its_tagger_and_time(repo, monkeypatch):
    from gitml import registry
    from gitml.sync import SyncReport, _absorb_tags

    gr, cs = _registry_repo(repo)
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Local Person")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "local@example.com")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1650000000 -0330")
    git(repo, "tag", "-a", "rf#production#1", "-m", "ours", cs[0])  # our unpublished promotion
    ours = gr.read_tag(gr.tag_refs()["rf#production#1"])
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    theirs = _their_tag(gr, "rf#production#1", cs[1], "theirs\n")
    report = SyncReport("origin")
    _absorb_tags(gr, {"refs/tags/rf#production#1": theirs}, report)
    assert report.tags_renumbered == {"rf#production#1": "rf#production#2"} and report.tag_conflicts == {}
    moved = gr.read_tag(gr.tag_refs()["rf#production#2"])
    assert (moved.tagger, moved.email, moved.time, moved.offset, moved.message, moved.target) == (
        "Local Person", "local@example.com", 1650000000, -210, ours.message, cs[0])
    assert "Local Person <local@example.com> 1650000000 -0330" in git(repo, "cat-file", "-p", "rf#production#2")
    assert gr.tag_refs()["rf#production#1"] == theirs
    assert len([e for e in registry.get_model(gr, "rf").events if e.action == "assign"]) == 2


def test_renumbering_interrupted_half_way_is_not_duplicated_on_rerun(repo, monkeypatch):
    from gitml import registry
    from gitml.store.repo import GitRepo
    from gitml.sync import SyncReport, _absorb_tags

    gr, cs = _registry_repo(repo)
    registry.assign(gr, "rf", 1, "production")  # our unpublished rf#production#1
    theirs = _their_tag(gr, "rf#production#1", cs[1], "theirs\n")
    incoming = {"refs/tags/rf#production#1": theirs}
    real = GitRepo.cas_ref
    calls = []

    def second_fails(self, name, new, old):  # the copy is created, then the process dies
        calls.append(name)
        return real(self, name, new, old) if len(calls) == 1 else False

    monkeypatch.setattr(GitRepo, "cas_ref", second_fails)
    first = SyncReport("origin")
    _absorb_tags(gr, incoming, first)
    assert first.tag_conflicts and "rf#production#2" in gr.tag_refs()
    monkeypatch.setattr(GitRepo, "cas_ref", real)
    for _ in range(2):  # rerun, and once more: our event exists once, under the new name
        again = SyncReport("origin")
        _absorb_tags(gr, incoming, again)
        assert again.tag_conflicts == {}
    names = sorted(n for n in gr.tag_refs() if n.startswith("rf#"))
    assert names == ["rf#production#1", "rf#production#2"]
    assert gr.tag_refs()["rf#production#1"] == theirs


@pytest.mark.parametrize("action", ["deprecate", "deregister"])
def test_the_same_uncounted_change_on_both_sides_is_not_a_conflict(repo, action):
    from gitml import registry
    from gitml.sync import SyncReport, _absorb_tags

    gr, cs = _registry_repo(repo)
    if action == "deprecate":
        written = registry.deprecate(gr, "rf")
    else:
        written = registry.deregister(gr, "rf", 1)
    name = written[0]
    assert "#" not in name  # no counter: both clones write this very name
    ours = gr.read_tag(gr.tag_refs()[name])
    theirs = _their_tag(gr, name, ours.target, "their words\n")
    report = SyncReport("origin")
    _absorb_tags(gr, {f"refs/tags/{name}": theirs}, report)
    assert report.tag_conflicts == {} and report.tags_received == [name]
    assert gr.tag_refs()[name] == theirs
    # a different target is still a conflict, and ours is kept
    other = _their_tag(gr, name, cs[1] if ours.target == cs[0] else cs[0], "elsewhere\n")
    report = SyncReport("origin")
    _absorb_tags(gr, {f"refs/tags/{name}": other}, report)
    assert name in report.tag_conflicts and gr.tag_refs()[name] == theirs


def _ref(repo: Path, run_id: str) -> str:
    return run_rev(repo, run_id)


def test_tag_rename_and_delete_reach_the_other_clone_and_push_converges(team):
    """Issue 14 (3): A changes a tag, deletes another and renames the run; B pulls and takes all
    three (before: "0 runs received", old values kept), and B's push then sends nothing back
    instead of reverting A's changes on the remote (the ref flipped on every push)."""
    a, b, bare, store = team
    ra = log_run(a, "alice")
    run_python(f"import gitml\nc = gitml.Client()\nc.set_tag('{ra}', 'stage', 'dev')\n"
               f"c.set_tag('{ra}', 'keep', 'me')\n", a)
    gitml_invoke(a, "push")
    gitml_invoke(b, "pull")
    assert runs(b)[ra]["data"]["tags"]["keep"] == "me"
    out = run_python(f"import gitml\nc = gitml.Client()\nc.set_tag('{ra}', 'stage', 'prod')\n"
                     f"c.delete_tag('{ra}', 'keep')\nc.update_run('{ra}', name='renamed')\n", a)
    assert out.returncode == 0, out.stderr
    gitml_invoke(a, "push")
    pulled = json.loads(gitml_invoke(b, "pull", "--json").stdout)
    assert pulled["runs_received"] == [ra]
    got = runs(b)[ra]
    assert got["data"]["tags"]["stage"] == "prod" and "keep" not in got["data"]["tags"]
    assert got["info"]["run_name"] == "renamed" and got["data"]["tags"]["mlflow.runName"] == "renamed"
    pushed = json.loads(gitml_invoke(b, "push", "--json").stdout)
    assert pushed["runs_sent"] == [] and pushed["refs_rejected"] == {}
    assert _ref(a, ra) == _ref(b, ra) == run_rev(bare, ra)
    ledger = f"refs/gitml/ledger/{ra[0]}"  # the whole shard converges, not only the run
    assert git(a, "rev-parse", ledger) == git(b, "rev-parse", ledger) == git(bare, "rev-parse", ledger)


def test_edits_on_both_clones_converge_to_one_commit(team):
    """Issue 14 (3): both clones change the same run before syncing: tags merge key by key (the
    later write wins, a deletion too), artifacts re-logged on one side win by time, metrics are
    the union; after one round of push/pull both clones and the remote hold the same commit,
    and further pushes and pulls change nothing."""
    a, b, bare, store = team
    ra = log_run(a, "alice")
    run_python(f"import gitml\ngitml.Client().set_tag('{ra}', 'gone', 'soon')\n", a)
    gitml_invoke(a, "push")
    gitml_invoke(b, "pull")
    edit_a = (f"import gitml\nc = gitml.Client()\nc.set_tag('{ra}', 'x', 'from-a')\nc.set_tag('{ra}', 'a_only', '1')\n"
              f"c.log_metric('{ra}', 'loss', 0.1, step=10)\n")
    assert run_python(edit_a, a).returncode == 0
    (b / "out").mkdir()
    (b / "out" / "alice.bin").write_bytes(b"rewritten by bob")
    edit_b = (f"import gitml\nc = gitml.Client()\nc.set_tag('{ra}', 'x', 'from-b')\nc.delete_tag('{ra}', 'gone')\n"
              f"c.log_metric('{ra}', 'loss', 0.2, step=11)\nc.log_artifact('{ra}', 'out/alice.bin', 'out')\n")
    out = run_python(edit_b, b)  # later than A's edits: B's x and B's artifact win
    assert out.returncode == 0, out.stderr
    gitml_invoke(a, "push")
    assert json.loads(gitml_invoke(b, "push", "--json").stdout)["runs_merged"] == [ra]
    gitml_invoke(a, "pull")
    assert _ref(a, ra) == _ref(b, ra) == run_rev(bare, ra)
    ledger = f"refs/gitml/ledger/{ra[0]}"  # the whole shard converges, not only the run
    assert git(a, "rev-parse", ledger) == git(b, "rev-parse", ledger) == git(bare, "rev-parse", ledger)
    for clone in (a, b):
        got = runs(clone)[ra]
        tags = got["data"]["tags"]
        assert tags["x"] == "from-b" and tags["a_only"] == "1" and "gone" not in tags, clone
        assert got["data"]["metrics"]["loss"] == 0.2
    history = run_python(f"import gitml\nprint(sorted(m.step for m in gitml.Client().get_metric_history('{ra}', 'loss')))\n", a)
    assert history.stdout.strip() == "[0, 1, 2, 10, 11]"
    dl = run_python(f"import gitml\nprint(open(gitml.artifacts.download_artifacts(run_id='{ra}', "
                    f"artifact_path='out/alice.bin'), 'rb').read())\n", a)
    assert dl.stdout.strip() == "b'rewritten by bob'", dl.stderr
    for clone in (a, b, a, b):
        assert json.loads(gitml_invoke(clone, "push", "--json").stdout)["runs_sent"] == []
        pulled = json.loads(gitml_invoke(clone, "pull", "--json").stdout)
        assert pulled["runs_received"] == [] and pulled["runs_merged"] == []


def test_a_bad_run_in_a_pushed_ledger_is_left_out_and_the_rest_taken(team):
    """The ledger is untrusted input too: an entry whose run commit is malformed (pushed with
    plain git into a shard beside a good run) is not taken, with a warning naming it; an entry
    filed in the wrong shard is never read; the good run arrives."""
    import pygit2

    a, b, bare, store = team
    ra = log_run(a, "alice")
    gitml_invoke(a, "push")
    repo = pygit2.Repository(str(a))
    sig = pygit2.Signature("Mallory", "m@example.com")
    bad_id = ra[0] + uuid.uuid4().hex[1:]
    other = ("0" if ra[0] != "0" else "1") + uuid.uuid4().hex[1:]
    blob = repo.create_blob(b"not json")
    tb = repo.TreeBuilder()
    tb.insert("run.json", blob, pygit2.GIT_FILEMODE_BLOB)
    bad_commit = repo.create_commit(None, sig, sig, f"gitml run {bad_id}: FINISHED\n", tb.write(), [])
    shard = f"refs/gitml/ledger/{ra[0]}"
    head = repo.references[shard].peel(pygit2.Commit)
    root = repo.TreeBuilder(head.tree)
    for run_id in (bad_id, other):
        sub = repo.TreeBuilder(repo[head.tree[run_id[:2]].id]) if run_id[:2] in head.tree else repo.TreeBuilder()
        sub.insert(run_id[2:], bad_commit, pygit2.GIT_FILEMODE_COMMIT)
        root.insert(run_id[:2], sub.write(), pygit2.GIT_FILEMODE_TREE)
    forged = repo.create_commit(None, sig, sig, "forged\n", root.write(), [head.id, bad_commit])
    repo.references[shard].set_target(forged)
    git(a, "push", "-q", "origin", "refs/gitml/*:refs/gitml/*")
    out = gitml_cli(b, "pull", "--json")  # a new process: the warning is printed by the real entry point
    report = json.loads(out.stdout)
    assert ra in runs(b) and bad_id not in runs(b) and other not in runs(b)
    assert f"{shard}:{bad_id}" in report["rejected"]
    assert bad_id in out.stderr and other not in out.stderr
    assert json.loads(gitml_invoke(b, "push", "--json").stdout)["refs_rejected"] == {}


def test_a_torn_object_on_the_artifact_remote_is_rewritten(team):
    """DVC's reflink attempt creates the object's final path before it falls back to a copy, so a
    push killed there leaves an empty file named like the object. It is not taken for the
    object: the next push writes it whole (before, the rerun skipped it and the remote kept an
    empty artifact under a non-empty md5)."""
    a, b, bare, store = team
    ra = log_run(a, "alice")
    md5 = hashlib.md5(b"alice" * 1000).hexdigest()
    torn = store / "files" / "md5" / md5[:2] / md5[2:]
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"")
    report = json.loads(gitml_invoke(a, "push", "--json").stdout)
    assert report["artifacts_copied"] == 1 and report["runs_sent"] == [ra]
    assert hashlib.md5(torn.read_bytes()).hexdigest() == md5


def test_many_clones_pushing_at_once_all_succeed_and_lose_nothing(team, tmp_path):
    """Clones that push at the same moment collide on the notes ref and the ledger shards; each
    lost race is merged and retried, so every push succeeds and the remote ends with every
    run and every note line."""
    a, b, bare, store = team
    clones = [a, b]
    for i in range(4):
        c = tmp_path / f"C{i}"
        git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(c))
        gitml_invoke(c, "remote", "add", "-d", "store", str(store))
        clones.append(c)
    ids = [log_run(c, f"{c.name}-{k}") for c in clones for k in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "gitml", "push"], cwd=c,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in clones]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(fresh))
    gitml_invoke(fresh, "remote", "add", "-d", "store", str(store))
    gitml_invoke(fresh, "pull")
    assert set(runs(fresh)) == set(ids)
    notes = git(fresh, "log", "--notes=gitml", "--format=%N", "main")
    assert all(run_id in notes for run_id in ids)


# -- issue 18 (7): errors from git and from DVC as one line that says what to do -----------------------------


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_git_remote_that_does_not_exist_is_one_line(team, tmp_path, command):
    """Issue 18 (7): `gitml push nosuch` printed git's five lines of fatal: and advice."""
    a, *_ = team
    log_run(a, "alice")
    for remote in ("nosuch", str(tmp_path / "nowhere.git")):
        out = gitml_cli(a, command, remote, check=False)
        assert out.returncode == 1
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("Error: Cannot "), out.stderr
        assert out.stderr.endswith(f"git remote {remote!r}: {remote!r} does not appear to be a git repository\n")


def test_error_line_takes_what_git_says_went_wrong():
    from gitml.store.gitcli import error_line

    assert error_line("fatal: 'x' does not appear to be a git repository\nfatal: Could not read from remote "
                      "repository.\n\nPlease make sure you have the correct access rights\n") == \
        "'x' does not appear to be a git repository"
    assert error_line("hint: use --force\nerror: failed to push some refs to 'r'\n") == \
        "failed to push some refs to 'r'"
    assert error_line("warning: redirecting\nsomething odd\n") == "something odd"
    assert error_line("") == ""


PLUGINS = {"gs": "gs://bucket/runs", "azure": "azure://container/runs", "ssh": "ssh://host/srv/runs"}


@pytest.mark.parametrize("extra", sorted(PLUGINS))
def test_a_remote_whose_dvc_plugin_is_missing_names_the_extra_to_install(team, extra):
    """Issue 18 (7): an artifact remote of a kind whose DVC plugin is not installed ended in an
    "unexpected ImportError"; it names the gitml extra now, on push and on pull."""
    import importlib.util

    if importlib.util.find_spec(f"dvc_{extra}") is not None:
        pytest.skip(f"dvc-{extra} is installed")
    a, b, bare, store = team
    run_id = log_run(a, "alice")
    gitml_invoke(a, "remote", "add", "-d", "cloud", PLUGINS[extra])
    out = gitml_cli(a, "push", check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr == (f"Error: Artifact remote 'cloud' ({PLUGINS[extra]}) needs dvc-{extra}, which is not "
                          f"installed: pip install 'gitml[{extra}]'\n")
    assert git(bare, "for-each-ref", "refs/gitml") == ""  # nothing went to git without its artifacts

    gitml_cli(a, "push", "-r", "store")
    gitml_invoke(b, "remote", "add", "-d", "cloud", PLUGINS[extra])
    out = gitml_cli(b, "pull", check=False)
    assert out.returncode == 1 and f"pip install 'gitml[{extra}]' (the runs were pulled" in out.stderr
    assert run_id in runs(b)


def test_every_dvc_plugin_extra_is_in_pyproject():
    """The extras the missing-plugin error names exist and install that plugin."""
    from gitml.store.content import PLUGIN_EXTRAS, plugin_missing

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for package, extra in PLUGIN_EXTRAS.items():
        assert any(req.startswith(package) for req in extras[extra]), (package, extra)
        scheme = package.removeprefix("dvc-")
        error = ImportError(f"{scheme} is supported, but requires '{package}' to be installed")
        assert plugin_missing("r", f"{scheme}://x", error).message.endswith(f"pip install 'gitml[{extra}]'")
    other = plugin_missing("r", "hdfs://x", ImportError("hdfs is supported, but requires 'dvc-hdfs' to be installed"))
    assert other.message.endswith("pip install dvc-hdfs")
