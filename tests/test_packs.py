"""Runs are written as small packs, not loose objects, and the packs are kept few.

Checked against the real git CLI: the ``.idx`` gitml writes is the one
``git index-pack`` makes of the same pack, ``git fsck --strict`` accepts
what runs wrote, a process that opened the repository earlier reads what
another wrote, and the background geometric repack keeps the packs bounded.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from gitml.store import packs
from gitml.store.repo import GitRepo, Gitlink
from tests.conftest import git, git_run_ids, run_python, run_rev

RUNS = """
import gitml, sys
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else {n}):
    with gitml.start_run(run_name=f"r{{i}}"):
        gitml.log_params({{"i": i, "lr": 0.1}})
        gitml.log_metric("loss", 1.0 / (i + 1))
        gitml.set_tag("kind", "test")
"""


def loose_count(repo: Path) -> int:
    return int(dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())["count"])


def wait_for_repack(repo: Path) -> None:
    """Until no background repack holds the lock (it holds it as long as it runs)."""
    lock = repo / ".git" / "gitml" / "repack.lock"
    deadline = time.time() + 60
    while lock.exists() and time.time() < deadline:
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            os.close(fd)


def test_runs_write_no_loose_objects_and_git_accepts_every_object(repo):
    before = loose_count(repo)
    out = run_python(RUNS.format(n=5), repo)
    assert out.returncode == 0, out.stderr
    assert loose_count(repo) == before  # the work tree is clean: no snapshot objects either
    git(repo, "fsck", "--strict", "--no-dangling")
    for run_id in git_run_ids(repo):
        commit = run_rev(repo, run_id)
        assert git(repo, "cat-file", "-t", commit).strip() == "commit"
        assert '"lr": "0.1"' in git(repo, "show", f"{commit}:params.json")
        author = git(repo, "log", "-1", "--format=%an <%ae> %ad", "--date=raw", commit)
        assert author.startswith("Test User <test@example.com> ")  # conftest's identity


def test_the_index_is_the_one_git_index_pack_makes(tmp_path):
    objects = {}
    for i in range(300):  # enough for every fan-out bucket to be used somewhere
        data = f"object {i}\n".encode() * (i % 7 + 1)
        objects[packs.object_id(packs.BLOB, data)] = (packs.BLOB, data)
    pack, idx = packs.pack_bytes((oid, kind, data) for oid, (kind, data) in objects.items())
    (tmp_path / "p.pack").write_bytes(pack)
    git(tmp_path, "init", "-q", "g")
    git(tmp_path / "g", "index-pack", "-o", str(tmp_path / "git.idx"), str(tmp_path / "p.pack"))
    assert (tmp_path / "git.idx").read_bytes() == idx


def test_a_process_that_opened_the_repository_earlier_reads_new_packs(repo, tracking):
    reader = GitRepo(repo / ".git")
    assert reader.ref_target("refs/heads/main") or reader.ref_target("refs/heads/master")
    out = run_python(RUNS.format(n=3), repo)
    assert out.returncode == 0, out.stderr
    for run_id in git_run_ids(repo):
        commit = run_rev(repo, run_id)
        assert b'"run_id"' in (reader.read_path(reader.commit_info(commit).tree, "run.json") or b"")


def test_a_batch_left_by_an_exception_writes_nothing(repo):
    r = GitRepo(repo / ".git")
    before = sorted((repo / ".git" / "objects" / "pack").glob("*.pack")) if (repo / ".git/objects/pack").exists() else []
    with pytest.raises(RuntimeError):
        with r.batch():
            tree = r.update_tree(None, {"a/b.txt": b"hello", "c": Gitlink("1" * 40)})
            r.write_commit(tree, [], "never stored\n")
            raise RuntimeError("boom")
    assert sorted((repo / ".git" / "objects" / "pack").glob("*.pack")) == before
    assert not r.has_object(tree)


def test_a_batch_builds_on_its_own_trees(repo):
    r = GitRepo(repo / ".git")
    with r.batch():
        first = r.update_tree(None, {"x/one": b"1", "x/two": b"2", "link": Gitlink("2" * 40)})
        second = r.update_tree(first, {"x/two": None, "y/three": b"3"})  # reads ``first`` from the batch
        commit = r.write_commit(second, [], "two steps\n")
    listing = git(repo, "ls-tree", "-r", commit)
    assert "160000 commit " + "2" * 40 + "\tlink" in listing
    assert "x/one" in listing and "y/three" in listing and "x/two" not in listing
    git(repo, "fsck", "--strict", "--no-dangling")


def test_packs_stay_few_however_many_runs(repo, monkeypatch):
    n = 60
    code = f"import gitml.store.packs as p\np.REPACK_AT = 8\n" + RUNS.format(n=n)
    out = run_python(code, repo)
    assert out.returncode == 0, out.stderr
    wait_for_repack(repo)
    out = run_python(code, repo)  # a second process finds the packs of the first
    assert out.returncode == 0, out.stderr
    wait_for_repack(repo)
    count = packs.pack_count(repo / ".git" / "objects")
    assert count < 8 + 8, count  # without the repack: one pack per run, 120
    assert len(git_run_ids(repo)) == 2 * n
    git(repo, "fsck", "--strict", "--no-dangling")
