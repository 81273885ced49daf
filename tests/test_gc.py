"""`gitml gc`: artifact objects nothing references are deleted, and nothing else ever is.

Real repositories, the real git CLI, a local-directory DVC remote, and the
real `dvc` for the guard against `dvc gc` (issue 17, item 6).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git, gitml_invoke, run_rev
from tests.test_sync import s3_server, team  # noqa: F401  (fixtures: moto's S3 server; clones A and B of a bare remote)

DVC = str(Path(sys.executable).parent / "dvc")
OLD = time.time() - 30 * 86400  # an mtime far outside any grace period


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def obj_path(repo: Path, digest: str, cache: str = ".git/gitml/cache") -> Path:
    return repo / cache / "files" / "md5" / digest[:2] / digest[2:]


def put_object(root: Path, data: bytes, mtime: float = OLD) -> str:
    """An object in a DVC-layout store (cache or remote) at ``root``, nothing naming it."""
    digest = md5(data)
    path = root / "files" / "md5" / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return digest


def age(root: Path) -> None:
    """Every object in the store at ``root`` as if written long ago (so only references keep it)."""
    for p in (root / "files" / "md5").rglob("*"):
        if p.is_file():
            os.utime(p, (OLD, OLD))


def gc(repo: Path, *args: str, check: bool = True) -> dict:
    out = gitml_invoke(repo, "gc", "--json", *args, check=check)
    return json.loads(out.stdout)


def removed(report: dict, store: int = 0) -> set[str]:
    return {r["md5"] for r in report["stores"][store]["removed"]}


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def craft_run(repo: Path, files: dict[str, bytes | str], ref: str, mode: str = "100644") -> str:
    """A commit whose tree holds ``files`` (bytes: a blob; "tree:<oid>"/"missing:<oid>" strings: other
    entries), pointed at by ``ref``: a run made by hand, as a teammate's damaged push would be."""
    lines = []
    for name, data in sorted(files.items()):
        if isinstance(data, bytes):
            blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data,
                                  capture_output=True, check=True).stdout.decode().strip()
            lines.append(f"{mode} blob {blob}\t{name}")
        elif data.startswith("tree:"):
            lines.append(f"040000 tree {data[5:]}\t{name}")
        else:
            lines.append(f"100644 blob {data[8:]}\t{name}")
    tree = subprocess.run(["git", "mktree", "--missing"], cwd=repo, input="\n".join(lines) + "\n", text=True,
                          capture_output=True, check=True).stdout.strip()
    commit = git(repo, "commit-tree", tree, "-m", "gitml run by hand: FINISHED").strip()
    git(repo, "update-ref", ref, commit)
    return commit


def run_json(run_id: str) -> bytes:
    return json.dumps({"run_id": run_id}).encode()


# -- the local cache ------------------------------------------------------------------------------


@pytest.fixture
def logged(tracking, repo, tmp_path):
    """A finished run with a file and a directory (its .dir object), plus two orphan objects."""
    f = write_file(tmp_path / "in" / "model.bin", b"weights" * 100)
    d = tmp_path / "in" / "data"
    write_file(d / "a.csv", b"a,b\n1,2\n")
    write_file(d / "sub" / "b.txt", b"bee\n")
    with tracking.start_run() as run:
        tracking.log_artifact(f)
        tracking.log_artifacts(d, "data")
    cache = repo / ".git/gitml/cache"
    age(cache)
    orphans = {put_object(cache, b"orphan one"), put_object(cache, b"orphan two")}
    manifest = json.loads(git(repo, "show", f"{run_rev(repo, run.info.run_id)}:artifacts.json"))
    named = {e["md5"] for e in manifest.values()}
    return run.info.run_id, named, orphans


def test_dry_run_deletes_nothing_and_lists_what_it_would(logged, repo):
    run_id, named, orphans = logged
    before = sorted(p for p in (repo / ".git/gitml/cache").rglob("*") if p.is_file())
    report = gc(repo)
    assert report["dry_run"] is True and report["refused"] == []
    assert removed(report) == orphans
    assert report["stores"][0]["referenced"] == len(named) == 4  # three files and the directory's .dir
    assert sorted(p for p in (repo / ".git/gitml/cache").rglob("*") if p.is_file()) == before
    text = gitml_invoke(repo, "gc", "-v").stdout
    assert "would remove 2 objects" in text and "nothing was deleted" in text
    assert all(o in text for o in orphans)


def test_force_deletes_only_what_nothing_references(logged, repo, tmp_path):
    run_id, named, orphans = logged
    report = gc(repo, "--force")
    assert report["dry_run"] is False and removed(report) == orphans
    for digest in orphans:
        assert not obj_path(repo, digest).exists()
    for digest in named:
        assert obj_path(repo, digest).exists()
    out = tmp_path / "dl"
    gitml_invoke(repo, "artifacts", "download", run_id, "-d", str(out))
    assert (out / "data" / "sub" / "b.txt").read_bytes() == b"bee\n"
    assert gc(repo, "--force")["stores"][0]["removed"] == []  # nothing left to do


def test_recent_objects_are_kept_until_the_grace_period_ends(logged, repo):
    """An object stored a moment ago, not named yet (a run logging concurrently): kept."""
    fresh = put_object(repo / ".git/gitml/cache", b"just stored", mtime=time.time())
    report = gc(repo, "--force")  # default keep_recent: one hour
    assert fresh not in removed(report) and obj_path(repo, fresh).exists()
    assert report["stores"][0]["kept_recent"] == 1
    assert fresh not in removed(gc(repo, "--keep-recent", "2h"))
    assert fresh in removed(gc(repo, "--keep-recent", "0"))
    git(repo, "config", "gitml.gckeeprecent", "0")  # the setting, through git config
    assert fresh in removed(gc(repo))


def test_storing_an_object_again_freshens_it(tracking, repo, tmp_path):
    """Logging content already in the cache (an old, unnamed object) restarts its grace period,
    as git freshens an object it writes again."""
    cache = repo / ".git/gitml/cache"
    digest = put_object(cache, b"same content")
    f = write_file(tmp_path / "f.bin", b"same content")
    with tracking.start_run():
        tracking.log_artifact(f)
    assert obj_path(repo, digest).stat().st_mtime > time.time() - 600


def test_keeps_objects_of_a_live_run_not_committed_yet(tracking, repo, tmp_path):
    """A run being logged: its artifact event is only in the live log (no flush yet)."""
    import gitml

    f = write_file(tmp_path / "live.bin", b"live run artifact")
    tracking.start_run()
    try:
        tracking.log_artifact(f)
        age(repo / ".git/gitml/cache")
        digest = md5(b"live run artifact")
        run_id = gitml.active_run().info.run_id
        assert run_id not in git(repo, "for-each-ref", "refs/gitml/")  # no commit of the run yet
        report = gc(repo, "--force", "--keep-recent", "0")
        assert report["live_logs"] >= 1 and digest not in removed(report)
        assert obj_path(repo, digest).exists()
    finally:
        tracking.end_run()


def test_keeps_runs_live_folded_and_every_earlier_state(tracking, repo, tmp_path):
    """A live run (own ref) and a folded one (ledger); an artifact logged again under the same path
    leaves its first content in an earlier state of the run, which the ledger's history keeps."""
    first = write_file(tmp_path / "a" / "w.bin", b"first weights")
    with tracking.start_run() as done:
        tracking.log_artifact(first)
    second = write_file(tmp_path / "b" / "w.bin", b"second weights")
    tracking.Client().log_artifact(done.info.run_id, second)  # the same path, new content
    live_file = write_file(tmp_path / "c" / "live.bin", b"live")
    live = tracking.start_run()
    tracking.log_artifact(live_file)
    tracking.flush()
    try:
        assert git(repo, "for-each-ref", f"refs/gitml/runs/{live.info.run_id}")  # live: its own ref
        rid = done.info.run_id
        git(repo, "rev-parse", f"refs/gitml/ledger/{rid[0]}:{rid[:2]}/{rid[2:]}")  # folded into the ledger
        manifest = json.loads(git(repo, "show", f"{run_rev(repo, done.info.run_id)}:artifacts.json"))
        assert manifest["w.bin"]["md5"] == md5(b"second weights")
        age(repo / ".git/gitml/cache")
        report = gc(repo, "--force", "--keep-recent", "0")
        assert report["refused"] == [] and removed(report) == set()
        for data in (b"first weights", b"second weights", b"live"):
            assert obj_path(repo, md5(data)).exists()
    finally:
        tracking.end_run()


@pytest.mark.parametrize("target", ["commit", "tree", "branch"])
def test_a_run_only_on_another_ref_is_kept_and_its_objects_go_with_it(logged, repo, target):
    """Any ref counts (a backup ref, a ref to the run's tree, a branch): the run's objects stay until no
    ref reaches it."""
    run_id, named, orphans = logged
    commit = run_rev(repo, run_id)
    if target == "branch":  # a branch whose history has the run commit somewhere
        git(repo, "update-ref", "refs/backup/old-run", git(repo, "commit-tree", "HEAD^{tree}", "-p", commit, "-m",
                                                            "on top of a run").strip())
    else:
        git(repo, "update-ref", "refs/backup/old-run", commit + ("^{tree}" if target == "tree" else ""))
    for ref in git(repo, "for-each-ref", "--format=%(refname)", "refs/gitml/", "refs/gitml-local/").split():
        git(repo, "update-ref", "-d", ref)
    assert removed(gc(repo, "--keep-recent", "0")) == orphans
    git(repo, "update-ref", "-d", "refs/backup/old-run")
    assert removed(gc(repo, "--keep-recent", "0")) == orphans | named  # the check can fail


def test_registered_model_version_and_logged_model_are_kept(tracking, repo):
    """A logged model (a directory of the run's artifacts) registered as a version: the version's
    tag alone keeps its files once every gitml ref is gone."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    import numpy as np

    X = np.arange(12, dtype=float).reshape(6, 2)
    with tracking.start_run() as run:
        info = tracking.sklearn.log_model(sklearn.LinearRegression().fit(X, X.sum(axis=1)), name="model")
    tracking.register_model(f"runs:/{run.info.run_id}/model", "reg")
    commit = run_rev(repo, run.info.run_id)
    files = {e["md5"] for e in json.loads(git(repo, "show", f"{commit}:artifacts.json")).values()}
    assert any(k.startswith("model/") for k in json.loads(git(repo, "show", f"{commit}:artifacts.json")))
    age(repo / ".git/gitml/cache")
    for ref in git(repo, "for-each-ref", "--format=%(refname)", "refs/gitml/", "refs/gitml-local/",
                   "refs/notes/").split():
        git(repo, "update-ref", "-d", ref)
    assert git(repo, "tag", "-l").split() == ["reg@v0.0.1"]
    report = gc(repo, "--force", "--keep-recent", "0")
    assert report["refused"] == [] and removed(report) == set()
    assert all(obj_path(repo, f).exists() for f in files)
    model = tracking.pyfunc.load_model("models:/reg/1")
    assert model.predict(X[:2]) is not None
    git(repo, "tag", "-d", "reg@v0.0.1")
    assert removed(gc(repo, "--keep-recent", "0")) == files
    assert info.model_uri


def test_members_of_a_kept_directory_object_are_kept(repo):
    """A manifest that names only a directory's .dir object: the files it lists are kept."""
    cache = repo / ".git/gitml/cache"
    a, b = put_object(cache, b"member a"), put_object(cache, b"member b")
    listing = json.dumps([{"md5": a, "relpath": "a"}, {"md5": b, "relpath": "b"}]).encode()
    dir_md5 = md5(listing) + ".dir"
    path = obj_path(repo, dir_md5)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(listing)
    os.utime(path, (OLD, OLD))
    run_id = "d" * 32
    manifest = json.dumps({"d/": {"md5": dir_md5, "size": 16}}).encode()
    craft_run(repo, {"run.json": run_json(run_id), "artifacts.json": manifest}, "refs/kept/dir-run")
    report = gc(repo, "--force", "--keep-recent", "0")
    assert report["refused"] == [] and removed(report) == set()
    git(repo, "update-ref", "-d", "refs/kept/dir-run")
    assert removed(gc(repo, "--keep-recent", "0")) == {a, b, dir_md5}


def test_a_malformed_manifest_keeps_every_hash_it_mentions(logged, repo):
    """A run fetched from a teammate whose artifacts.json is not gitml's: gc does not guess, it keeps
    every md5 the file mentions (even spelled in capitals or JSON escapes) and says so."""
    run_id, named, orphans = logged
    one, two = sorted(orphans)
    escaped = "\\u00" + hex(ord(two[0]))[2:] + two[1:]
    bad = ('{"../../etc/passwd": {"md5": "%s", "size": 1}, "x": {"md5": "%s"}}' % (one.upper(), escaped)).encode()
    rid = "b" * 32
    commit = craft_run(repo, {"run.json": run_json(rid), "artifacts.json": bad}, f"refs/gitml/runs/{rid}")
    report = gc(repo, "--force", "--keep-recent", "0")
    assert report["refused"] == [] and removed(report) == set()
    assert [m["commit"] for m in report["malformed"]] == [commit]
    assert obj_path(repo, one).exists() and obj_path(repo, two).exists()
    err = gitml_invoke(repo, "gc").stderr
    assert f"commit {commit[:12]}: artifacts.json is not gitml's" in err


@pytest.mark.parametrize("damage", ["tree", "missing blob"])
def test_an_unreadable_run_makes_gc_refuse(logged, repo, damage):
    """A run whose manifest cannot be read at all: what it names is unknown, so nothing is deleted."""
    run_id, named, orphans = logged
    rid = "c" * 32
    if damage == "tree":
        empty = subprocess.run(["git", "mktree"], cwd=repo, input="", text=True, capture_output=True).stdout.strip()
        entry = f"tree:{empty}"
    else:
        entry = "missing:" + "e" * 40
    craft_run(repo, {"run.json": run_json(rid), "artifacts.json": entry}, f"refs/gitml/runs/{rid}")
    out = gitml_invoke(repo, "gc", "--force", "--keep-recent", "0", check=False)
    assert out.returncode == 1
    assert "deleted nothing" in out.stderr and f"refused: run commit" in out.stderr
    assert all(obj_path(repo, o).exists() for o in orphans)
    report = gc(repo, "--force", "--keep-recent", "0", check=False)
    assert report["refused"] and report["stores"][0]["removed"] == []
    git(repo, "update-ref", "-d", f"refs/gitml/runs/{rid}")
    assert removed(gc(repo, "--force", "--keep-recent", "0")) == orphans  # the same gc, once it can read


def test_a_writer_between_storing_and_logging_holds_gc_off(tracking, repo, tmp_path):
    """The race: an artifact is stored before the event naming it reaches the live log. A writer holds
    the store's lock (shared) in between; `gitml gc --force` waits for it, then sees the event."""
    tracking.start_run()
    run_id = tracking.active_run().info.run_id
    tracking.end_run()
    f = write_file(tmp_path / "slow.bin", b"logged while gc runs")
    digest = md5(f.read_bytes())
    put_object(repo / ".git/gitml/cache", f.read_bytes())  # already there, old: the worst case
    code = f"""
import sys, gitml
from gitml.tracking import artifacts, runs
repo = runs.open_repo({str(repo)!r})
w = runs.writer_for_existing(repo, {run_id!r})
store = artifacts.content_store(repo)
with store.writing():
    md5, size = store.add_file({str(f)!r})
    print("stored", flush=True)
    sys.stdin.readline()
    w.add_artifact("slow.bin", md5, size)
w.flush(close=True)
print("logged", flush=True)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert writer.stdout.readline().strip() == "stored"
        os.utime(obj_path(repo, digest), (OLD, OLD))  # even with its grace period over
        collector = subprocess.Popen([sys.executable, "-m", "gitml", "gc", "--force", "--keep-recent", "0", "--json"],
                                     cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        with pytest.raises(subprocess.TimeoutExpired):
            collector.wait(timeout=3)  # it waits for the writer's lock
        writer.stdin.write("go\n")
        writer.stdin.flush()
        out, err = collector.communicate(timeout=60)
        assert collector.returncode == 0, err
        assert digest not in removed(json.loads(out))
        assert writer.stdout.readline().strip() == "logged"
    finally:
        writer.kill()
        writer.wait()
    assert obj_path(repo, digest).read_bytes() == b"logged while gc runs"
    assert tracking.Client().list_artifacts(run_id)[0].path == "slow.bin"


def test_leftover_temporary_files_are_removed(logged, repo):
    cache = repo / ".git/gitml/cache/files/md5"
    mine = write_file(cache / ".tmp-123-abcdef", b"half")
    theirs = write_file(cache / "ab" / ".AbCdEfGhIjKlMnOpQrStUv.tmp", b"half")
    other = write_file(cache / "README", b"not ours")
    for p in (mine, theirs, other):
        os.utime(p, (OLD, OLD))
    report = gc(repo, "--force")
    assert sorted(t["path"] for t in report["stores"][0]["temp_files"]) == sorted([str(mine), str(theirs)])
    assert not mine.exists() and not theirs.exists() and other.exists()


def test_force_packs_loose_git_objects_and_refs(logged, repo):
    report = gc(repo)
    assert report["git"]["loose_objects"] > 0 and "after" not in report["git"]
    assert git(repo, "count-objects").startswith(f"{report['git']['loose_objects']} objects")
    report = gc(repo, "--force")
    assert report["git"]["after"]["loose_objects"] == 0 and report["git"]["after"]["loose_refs"] == 0
    assert git(repo, "count-objects").startswith("0 objects")
    git(repo, "fsck", "--strict", "--no-dangling")
    assert gc(repo, "--force", "--no-pack")["git"].get("after") is None


def test_keep_recent_must_be_a_duration(logged, repo):
    out = gitml_invoke(repo, "gc", "--keep-recent", "soon", check=False)
    assert out.returncode == 1 and "Invalid --keep-recent 'soon'" in out.stderr


def test_progress_and_domain_api(logged, repo):
    """The domain function the command calls reports each phase to a progress callback."""
    from gitml.store.repo import GitRepo
    from gitml.tracking import gc as api

    seen: set[str] = set()
    report = api.collect(GitRepo.discover(repo), keep_recent=0, progress=lambda phase, done, total: seen.add(phase))
    assert {"walk", "scan"} <= seen and len(report.stores[0].removed) == 2


# -- an artifact remote ------------------------------------------------------------------------


LOG = """
import gitml, sys
name = sys.argv[1]
with gitml.start_run(run_name=name) as run:
    with open(name + ".bin", "wb") as f:
        f.write(name.encode() * 100)
    gitml.log_artifact(name + ".bin")
print(run.info.run_id)
"""


def log_run(repo: Path, name: str) -> str:
    out = subprocess.run([sys.executable, "-c", LOG, name], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_remote_gc_keeps_what_teammates_pushed_and_removes_the_rest(team):
    """B collects the shared artifact remote without having pulled A's run: gc fetches the git remote's
    refs, so A's objects stay; an object no run anywhere names goes."""
    a, b, bare, store = team
    ra = log_run(a, "alice")
    gitml_invoke(a, "push")
    age(store)
    orphan = put_object(store, b"nobody's")
    report = gc(b, "-c", "--keep-recent", "0")
    assert report["git_remotes"] == ["origin"] and report["stores"][1]["store"] == "store"
    assert removed(report, 1) == {orphan}
    report = gc(b, "-c", "--force", "--keep-recent", "0")
    assert removed(report, 1) == {orphan}
    assert not obj_path(store, orphan, "").exists()
    assert obj_path(store, md5(b"alice" * 100), "").exists()
    assert not git(b, "for-each-ref", "refs/gitml-gc/")  # the fetched refs are gone again
    gitml_invoke(b, "pull")
    assert gitml_invoke(b, "artifacts", "list", ra).stdout.count("alice.bin") == 1
    # Without the git remote's refs (and its runs not pulled), A's object would have gone: the
    # fetch is what keeps it.
    c = a.parent / "C"
    git(a.parent, "init", "-q", str(c))
    gitml_invoke(c, "remote", "add", "-d", "store", str(store))
    assert md5(b"alice" * 100) in removed(gc(c, "-r", "store", "--keep-recent", "0"), 1)


def test_remote_gc_refuses_when_a_git_remote_cannot_be_reached(team, tmp_path):
    a, b, bare, store = team
    log_run(a, "alice")
    gitml_invoke(a, "push")
    age(store)
    git(b, "remote", "add", "gone", str(tmp_path / "no-such-repo.git"))
    out = gitml_invoke(b, "gc", "-c", "--force", "--keep-recent", "0", check=False)
    assert out.returncode == 1 and "Cannot fetch git remote 'gone'" in out.stderr
    assert obj_path(store, md5(b"alice" * 100), "").exists()
    report = gc(b, "-c", "--git-remote", "origin", "--keep-recent", "0")  # naming the ones that matter
    assert report["git_remotes"] == ["origin"] and removed(report, 1) == set()


# -- DVC: the guard against `dvc gc` --------------------------------------------------------------


def dvc(repo: Path, *args: str) -> str:
    out = subprocess.run([DVC, *args], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, f"dvc {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


@pytest.fixture
def dvc_repo(tracking, repo, tmp_path):
    """A repository that uses DVC (one tracked file, committed) and a gitml run with artifacts."""
    dvc(repo, "init", "-q")
    write_file(repo / "data.csv", b"x,y\n1,2\n")
    dvc(repo, "add", "-q", "data.csv")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "dvc data")
    f = write_file(tmp_path / "w.bin", b"gitml weights")
    with tracking.start_run() as run:
        tracking.log_artifact(f)
        tracking.log_artifacts(write_file(tmp_path / "d" / "m.txt", b"member").parent, "dir")
    git(repo, "tag", "run-tag", run_rev(repo, run.info.run_id))  # a tag on a run commit, for `dvc gc -T` to walk
    return run.info.run_id


def test_gitml_keeps_its_cache_outside_dvcs(dvc_repo, repo):
    assert obj_path(repo, md5(b"gitml weights")).exists()
    assert not obj_path(repo, md5(b"gitml weights"), ".dvc/cache").exists()
    assert obj_path(repo, md5(b"x,y\n1,2\n"), ".dvc/cache").exists()


@pytest.mark.parametrize("scope", [["-w"], ["-a", "-T"], ["-A"]])
def test_dvc_gc_cannot_delete_gitml_artifacts(dvc_repo, repo, tmp_path, scope):
    """Real `dvc gc` (workspace; all branches and tags, registry tags included; all commits) deletes
    only from DVC's cache, and gitml's objects are not there."""
    dvc(repo, "gc", "-f", *scope)
    out = tmp_path / "dl"
    gitml_invoke(repo, "artifacts", "download", dvc_repo, "-d", str(out))
    assert (out / "w.bin").read_bytes() == b"gitml weights" and (out / "dir" / "m.txt").read_bytes() == b"member"


def test_gitml_gc_never_touches_dvcs_cache(dvc_repo, repo):
    age(repo / ".dvc/cache")
    dvc_orphan = put_object(repo / ".dvc/cache", b"DVC's business")
    gc(repo, "--force", "--keep-recent", "0")
    assert obj_path(repo, md5(b"x,y\n1,2\n"), ".dvc/cache").exists()
    assert obj_path(repo, dvc_orphan, ".dvc/cache").exists()
    dvc(repo, "status")


def test_objects_an_older_gitml_left_in_dvcs_cache_are_adopted(dvc_repo, repo, tmp_path):
    """Before this guard gitml shared DVC's cache. Such an object is still read (from DVC's cache), and
    `gitml gc --force` copies it into gitml's cache, so a later `dvc gc` cannot lose it."""
    digest = md5(b"gitml weights")
    legacy = obj_path(repo, digest, ".dvc/cache")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    os.replace(obj_path(repo, digest), legacy)
    report = gc(repo)
    assert report["stores"][0]["adopted"] == 1 and not obj_path(repo, digest).exists()  # a dry run copies nothing
    assert gc(repo, "--force")["stores"][0]["adopted"] == 1
    assert obj_path(repo, digest).read_bytes() == b"gitml weights"
    dvc(repo, "gc", "-f", "-w")
    assert not legacy.exists()
    out = tmp_path / "dl"
    gitml_invoke(repo, "artifacts", "download", dvc_repo, "w.bin", "-d", str(out))
    assert (out / "w.bin").read_bytes() == b"gitml weights"


def test_reading_adopts_from_dvcs_cache(dvc_repo, repo, tmp_path):
    digest = md5(b"gitml weights")
    legacy = obj_path(repo, digest, ".dvc/cache")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    os.replace(obj_path(repo, digest), legacy)
    gitml_invoke(repo, "artifacts", "download", dvc_repo, "w.bin", "-d", str(tmp_path / "dl"))
    assert obj_path(repo, digest).exists()


@pytest.fixture
def dvc_team(dvc_repo, repo, tmp_path):
    """The DVC repository with DVC's default remote (DVC's data) and a gitml remote of its own."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    dvcstore, gstore = tmp_path / "dvcstore", tmp_path / "gitmlstore"
    dvc(repo, "remote", "add", "-d", "dvcstore", str(dvcstore))
    gitml_invoke(repo, "remote", "add", "-d", "gitmlstore", str(gstore))
    dvc(repo, "push", "-q")
    gitml_invoke(repo, "push")
    return dvcstore, gstore


def test_dvc_gc_cloud_cannot_reach_a_gitml_remote(dvc_team, repo):
    """`dvc gc -c` collects DVC's remote; gitml's own remote is not in DVC's config, so it is never touched."""
    dvcstore, gstore = dvc_team
    assert obj_path(gstore, md5(b"gitml weights"), "").exists()
    assert not obj_path(dvcstore, md5(b"gitml weights"), "").exists()
    before = sorted(p for p in gstore.rglob("*") if p.is_file())
    age(dvcstore)
    dvc_orphan = put_object(dvcstore, b"old dvc data")
    dvc(repo, "gc", "-f", "-w", "-c", "-r", "dvcstore")
    assert not obj_path(dvcstore, dvc_orphan, "").exists()  # dvc gc did run
    assert sorted(p for p in gstore.rglob("*") if p.is_file()) == before
    out = subprocess.run([DVC, "gc", "-f", "-w", "-c", "-r", "gitmlstore"], cwd=repo, capture_output=True, text=True)
    assert out.returncode != 0  # DVC does not know gitml's remote by name
    assert sorted(p for p in gstore.rglob("*") if p.is_file()) == before
    listing = json.loads(gitml_invoke(repo, "remote", "list", "--json").stdout)
    assert listing["default"] == "gitmlstore" and listing["dvc_remotes"] == ["dvcstore"]
    rows = [line.split() for line in gitml_invoke(repo, "remote", "list").stdout.splitlines()[1:]]
    assert [(r[0], r[-1]) for r in rows] == [("dvcstore", "dvc"), ("gitmlstore", "git")]


def test_gitml_gc_refuses_dvcs_remote_and_collects_its_own(dvc_team, repo):
    dvcstore, gstore = dvc_team
    age(gstore)
    mine = put_object(gstore, b"gitml orphan")
    dvc_data = obj_path(dvcstore, md5(b"x,y\n1,2\n"), "")
    out = gitml_invoke(repo, "gc", "-r", "dvcstore", "--force", "--keep-recent", "0", check=False)
    assert out.returncode == 1 and "is DVC's remote dvcstore too" in out.stderr
    assert dvc_data.exists()
    report = gc(repo, "-c", "--force", "--keep-recent", "0")  # the default: gitml's own remote
    assert report["stores"][1]["store"] == "gitmlstore" and removed(report, 1) == {mine}
    assert dvc_data.exists() and obj_path(gstore, md5(b"gitml weights"), "").exists()


def test_a_remote_shared_with_dvc_is_warned_about_and_dvc_gc_cloud_empties_it(dvc_repo, repo, tmp_path):
    """The limit: when gitml pushes to DVC's own remote, `dvc gc -c` deletes gitml's objects there
    (nothing in DVC names them). gitml gc says so; the docs tell the user to give gitml its own remote."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    shared = tmp_path / "shared"
    dvc(repo, "remote", "add", "-d", "shared", str(shared))
    gitml_invoke(repo, "push")
    assert obj_path(shared, md5(b"gitml weights"), "").exists()
    out = gitml_invoke(repo, "gc")
    assert "also DVC's remote shared" in out.stderr
    dvc(repo, "gc", "-f", "-w", "-c")
    assert not obj_path(shared, md5(b"gitml weights"), "").exists()


def test_remote_gc_on_s3(team, s3_server, monkeypatch):
    """A cloud remote (moto's S3 on 127.0.0.1): objects listed with their times, the unreferenced old
    ones deleted."""
    import boto3

    a, b, bare, store = team
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    gitml_invoke(a, "remote", "add", "-d", "s3", "s3://artifacts/gitml", "-o", f"endpointurl={s3_server}")
    log_run(a, "alice")
    gitml_invoke(a, "push")
    orphan = md5(b"nobody's")
    s3.put_object(Bucket="artifacts", Key=f"gitml/files/md5/{orphan[:2]}/{orphan[2:]}", Body=b"nobody's")
    report = gc(a, "-c", "--keep-recent", "0")
    assert report["stores"][1]["objects"] == 2 and removed(report, 1) == {orphan}
    assert removed(gc(a, "-c"), 1) == set()  # just uploaded: within the grace period
    assert removed(gc(a, "-c", "--force", "--keep-recent", "0"), 1) == {orphan}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"]]
    alice = md5(b"alice" * 100)
    assert keys == [f"gitml/files/md5/{alice[:2]}/{alice[2:]}"]
