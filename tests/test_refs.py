"""GitRepo.cas_ref writes gitml's own loose refs itself (``_cas_files``): what git sees agrees.

The fast path takes git's ``.lock`` protocol without libgit2. These tests
check it against the git CLI on real repositories: creates, updates of loose
and packed-only refs, lost races, a lock another git process holds, a killed
writer's stale lock, and the cases it leaves to libgit2 (a reflog to append
to, ``core.logAllRefUpdates=always``, a directory where the ref should be,
refs outside ``refs/gitml*``). The 4-process races of ``test_durability``
run through it too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gitml.store.repo import STALE_LOCK_SECONDS, GitRepo
from tests.conftest import git


def oids(repo: Path) -> tuple[str, str]:
    return git(repo, "rev-parse", "HEAD").strip(), git(repo, "rev-parse", "HEAD^{tree}").strip()


def locks(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo / ".git")) for p in (repo / ".git" / "refs").rglob("*.lock"))


def test_updates_agree_with_git_and_leave_no_locks(repo):
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    assert r.cas_ref("refs/gitml/t/x", a, None, also={"refs/gitml-local/t/x": a})
    assert not r.cas_ref("refs/gitml/t/x", b, None)  # exists already
    assert not r.cas_ref("refs/gitml/t/x", b, b)  # moved since "read"
    assert r.cas_ref("refs/gitml/t/x", b, a, also={"refs/gitml-local/t/x": b})
    assert git(repo, "rev-parse", "refs/gitml/t/x", "refs/gitml-local/t/x").split() == [b, b]
    assert r.ref_target("refs/gitml/t/x") == b
    assert locks(repo) == []
    git(repo, "fsck", "--strict", "--no-dangling")


def test_a_packed_only_ref_is_compared_with_its_packed_value(repo):
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    git(repo, "update-ref", "refs/gitml/t/p", a)
    git(repo, "pack-refs", "--all", "--prune")
    assert not (repo / ".git" / "refs" / "gitml" / "t" / "p").exists()
    assert not r.cas_ref("refs/gitml/t/p", b, None)  # it exists, in packed-refs
    assert r.cas_ref("refs/gitml/t/p", b, a)
    assert git(repo, "rev-parse", "refs/gitml/t/p").strip() == b
    assert git(repo, "for-each-ref", "--format=%(objectname)", "refs/gitml/t/p").strip() == b


def locked(repo: Path, name: str) -> tuple[GitRepo, str, str, Path]:
    """refs/gitml/t/<name> at HEAD, its ``.lock`` file (empty) taken as git takes it: no flock."""
    a, b = oids(repo)
    git(repo, "update-ref", f"refs/gitml/t/{name}", a)
    lock = repo / ".git" / "refs" / "gitml" / "t" / f"{name}.lock"
    lock.write_text("")
    return GitRepo.discover(repo), a, b, lock


def test_a_lock_held_by_git_is_a_lost_race_until_it_is_stale(repo):
    """A lock nobody flocks is watched until git lets go; one still there after
    STALE_LOCK_SECONDS is a killed writer's: removed, and the retry wins."""
    r, a, b, lock = locked(repo, "l")
    t0 = time.monotonic()
    assert not r.cas_ref("refs/gitml/t/l", b, a)
    assert time.monotonic() - t0 >= STALE_LOCK_SECONDS - 0.5
    assert git(repo, "rev-parse", "refs/gitml/t/l").strip() == a
    assert not lock.exists()
    assert r.cas_ref("refs/gitml/t/l", b, a)
    assert git(repo, "rev-parse", "refs/gitml/t/l").strip() == b


def test_a_lock_another_gitml_writer_holds_is_left_alone(repo):
    import fcntl

    r, a, b, lock = locked(repo, "h")
    old = time.time() - 10 * STALE_LOCK_SECONDS
    os.utime(lock, (old, old))
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer (another process's, as far as the file knows)
        assert not r.cas_ref("refs/gitml/t/h", b, a)
        assert lock.exists()
    finally:
        os.close(fd)
    os.unlink(lock)
    assert r.cas_ref("refs/gitml/t/h", b, a)


def test_a_lock_git_lets_go_of_is_a_quick_lost_race_and_the_retry_wins(repo):
    """The writer watches a young unflocked lock only until git lets go (not STALE_LOCK_SECONDS),
    leaves the ref alone while it is held, and its retry then wins."""
    import threading

    r, a, b, lock = locked(repo, "r")
    release = threading.Timer(0.1, lock.unlink)  # git's update takes milliseconds
    release.start()
    t0 = time.monotonic()
    try:
        assert not r.cas_ref("refs/gitml/t/r", b, a)
        waited = time.monotonic() - t0
    finally:
        release.join()
    assert 0.05 < waited < STALE_LOCK_SECONDS - 0.5  # not the wait for a stale lock
    assert git(repo, "rev-parse", "refs/gitml/t/r").strip() == a
    assert r.cas_ref("refs/gitml/t/r", b, a)
    assert git(repo, "rev-parse", "refs/gitml/t/r").strip() == b
    assert locks(repo) == []


@pytest.mark.parametrize("how", ["existing reflog", "logAllRefUpdates=always"])
def test_refs_with_a_reflog_get_their_entry(repo, how):
    """Left to libgit2, which appends the reflog entry git would."""
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    if how == "existing reflog":
        git(repo, "update-ref", "--create-reflog", "refs/gitml/t/g", a)
    else:
        git(repo, "config", "core.logAllRefUpdates", "always")
        git(repo, "update-ref", "refs/gitml/t/g", a)
        r = GitRepo.discover(repo)
    assert r.cas_ref("refs/gitml/t/g", b, a)
    last = (repo / ".git" / "logs" / "refs" / "gitml" / "t" / "g").read_text().splitlines()[-1]
    assert last.split()[:2] == [a, b] and last.endswith("\tgitml: update refs/gitml/t/g")


def test_a_directory_where_the_ref_should_be_is_left_to_libgit2_and_nothing_is_left(repo):
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    git(repo, "update-ref", "refs/gitml/t/d/inner", a)
    assert GitRepo._cas_files(r, "refs/gitml/t/d", b, None, None) is None
    assert locks(repo) == []
    assert not r.cas_ref("refs/gitml/t/d", b, None)  # libgit2 cannot lock it either
    assert locks(repo) == []
    assert git(repo, "rev-parse", "refs/gitml/t/d/inner").strip() == a


def test_refs_outside_gitmls_namespaces_are_left_to_libgit2(repo):
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    assert GitRepo._cas_files(r, "refs/heads/x", a, None, None) is None  # not handled here
    assert r.cas_ref("refs/heads/x", a, None)
    assert git(repo, "rev-parse", "refs/heads/x").strip() == a
    assert GitRepo._cas_files(r, "refs/gitml/a..b", a, None, None) is None
