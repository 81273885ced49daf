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
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitml.store.plain import PlainGitRepo
from gitml.store.repo import STALE_LOCK_SECONDS, GitRepo, RefUpdateFailed
from tests.conftest import git


def oids(repo: Path) -> tuple[str, str]:
    return git(repo, "rev-parse", "HEAD").strip(), git(repo, "rev-parse", "HEAD^{tree}").strip()


def locks(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo / ".git")) for p in (repo / ".git" / "refs").rglob("*.lock"))


@pytest.mark.parametrize("kind", [GitRepo, PlainGitRepo])
def test_updates_agree_with_git_and_leave_no_locks(repo, kind):
    """Through the files path itself (True/False, never None: libgit2 or `git update-ref` would
    give the same answers), in the library's repository and the hook's."""
    r = kind.discover(repo) if kind is GitRepo else PlainGitRepo(repo / ".git")
    a, b = oids(repo)
    assert r._cas_files("refs/gitml/t/x", a, None, {"refs/gitml-local/t/x": a}) is True
    assert r._cas_files("refs/gitml/t/x", b, None, None) is False  # exists already
    assert r._cas_files("refs/gitml/t/x", b, b, None) is False  # moved since "read"
    assert r._cas_files("refs/gitml/t/x", b, a, {"refs/gitml-local/t/x": b}) is True
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


def test_a_ref_in_the_way_of_a_new_refs_path_is_refused_as_git_refuses(repo):
    """A packed ref above or below the path of a ref to create: `git update-ref` says "'refs/a'
    exists; cannot create 'refs/a/b'", and so does the files path (nothing written, no lock left)."""
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    git(repo, "update-ref", "refs/gitml/t/above", a)
    git(repo, "update-ref", "refs/gitml/t/below/x", a)
    git(repo, "pack-refs", "--all", "--prune")
    for ref, other in (("refs/gitml/t/above/x", "refs/gitml/t/above"), ("refs/gitml/t/below", "refs/gitml/t/below/x")):
        said = subprocess.run(["git", "update-ref", ref, b, ""], cwd=repo, capture_output=True, text=True)
        assert said.returncode != 0 and f"'{other}' exists" in said.stderr
        with pytest.raises(RefUpdateFailed, match=f"'{other}' exists; cannot create '{ref}'"):
            r.cas_ref(ref, b, None)
        assert locks(repo) == []
        assert subprocess.run(["git", "rev-parse", "-q", "--verify", ref], cwd=repo).returncode != 0
    (repo / ".git" / "refs" / "gitml" / "t" / "loose").write_text(a + "\n")
    with pytest.raises(RefUpdateFailed, match="in the way"):
        r.cas_ref("refs/gitml/t/loose/x", b, None)


def test_targets_that_are_not_existing_objects_are_left_to_libgit2(repo):
    r = GitRepo.discover(repo)
    a, _ = oids(repo)
    assert r._cas_files("refs/gitml/t/o", "abc", None, None) is None
    assert r._cas_files("refs/gitml/t/o", "1" * 40, None, None) is None  # well-formed, no such object
    assert r._cas_files("refs/gitml/t/o", a, None, {"refs/gitml-local/t/o": "2" * 40}) is None
    assert locks(repo) == [] and git(repo, "for-each-ref", "refs/gitml") == ""


@pytest.mark.parametrize("setting", [("core.sharedRepository", "group"), ("core.fsync", "reference"),
                                     ("core.fsyncRefFiles", "true")])
def test_settings_that_ask_more_of_a_ref_write_are_left_to_libgit2(repo, setting):
    r = GitRepo.discover(repo)
    a, _ = oids(repo)
    assert r._cas_files("refs/gitml/t/s", a, None, None) is True
    git(repo, "config", *setting)
    assert r._cas_files("refs/gitml/t/s2", a, None, None) is None


def test_a_global_config_change_is_seen_by_a_long_running_writer(repo, tmp_path):
    """`mlflow server` runs for days: a setting made in the global config (the tests' HOME's
    .gitconfig) later is honoured by the next write. (`git init` writes core.logAllRefUpdates into
    the repository's own config, which wins over a global one.)"""
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    assert r._cas_files("refs/gitml/t/w", a, None, None) is True
    git(tmp_path, "config", "--global", "core.sharedRepository", "group")
    assert r._cas_files("refs/gitml/t/w", b, a, None) is None
    assert r.cas_ref("refs/gitml/t/w", b, a)
    assert git(repo, "rev-parse", "refs/gitml/t/w").strip() == b


def test_a_writer_waiting_on_a_busy_lock_holds_none_of_its_own(repo):
    """The second ref's lock is git's (young, unflocked): while the writer watches it, the first
    ref's lock is not held (libgit2 let go of its locks too), and the lost race changes nothing."""
    import threading

    r, a, b, busy = locked(repo, "second")
    git(repo, "update-ref", "refs/gitml/t/first", a)
    first_lock = repo / ".git" / "refs" / "gitml" / "t" / "first.lock"
    answer: list[bool] = []
    writer = threading.Thread(target=lambda: answer.append(
        r.cas_ref("refs/gitml/t/first", b, a, also={"refs/gitml/t/second": b})))
    writer.start()
    deadline = time.monotonic() + 5
    while busy.stat().st_atime_ns == 0 and time.monotonic() < deadline:
        pass
    time.sleep(0.3)  # the writer is watching the busy lock now
    try:
        assert writer.is_alive() and not first_lock.exists()
    finally:
        busy.unlink()
        writer.join()
    assert answer == [False] and locks(repo) == []
    assert git(repo, "rev-parse", "refs/gitml/t/first").strip() == a
    assert r.cas_ref("refs/gitml/t/first", b, a, also={"refs/gitml/t/second": b})


_RACER = """
import sys
from gitml.store.repo import GitRepo
repo, ref, n = GitRepo(sys.argv[1]), "refs/gitml/t/c", int(sys.argv[2])
tree = repo.update_tree(None, {"f": sys.argv[3].encode()})
won = []
while len(won) < n:
    old = repo.ref_target(ref)
    new = repo.write_commit(tree, [old], f"{sys.argv[3]} {len(won)}")
    if repo.cas_ref(ref, new, old, also={"refs/gitml-local/t/c": new}):
        won.append(new)
print("\\n".join(won))
"""


def test_racing_writers_and_git_pack_refs_lose_no_update(repo, tmp_path):
    """Two processes chain commits on one ref (each win's commit has the ref's old value as
    parent) while `git pack-refs --all --prune` runs in a loop: every win is in the final history."""
    a, _ = oids(repo)
    git(repo, "update-ref", "refs/gitml/t/c", a)
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    racers = [subprocess.Popen([sys.executable, str(script), str(repo / ".git"), "40", f"w{i}"],
                               stdout=subprocess.PIPE, text=True) for i in range(2)]
    packs = 0
    while any(p.poll() is None for p in racers):
        git(repo, "pack-refs", "--all", "--prune")
        packs += 1
    wins = [line for p in racers for line in p.communicate()[0].split()]
    assert all(p.returncode == 0 for p in racers) and len(wins) == 80 and packs > 0
    history = set(git(repo, "rev-list", "refs/gitml/t/c").split())
    assert set(wins) <= history and len(history) == 80 + len(git(repo, "rev-list", a).split())
    assert git(repo, "rev-parse", "refs/gitml/t/c") == git(repo, "rev-parse", "refs/gitml-local/t/c")
    assert locks(repo) == []
    git(repo, "fsck", "--strict", "--no-dangling")


@pytest.mark.parametrize("content", ["ref: refs/heads/main\n", "not an id\n", "../../../../etc/passwd\n", "f" * 300])
def test_a_fetched_ref_file_that_is_not_a_plain_id_is_left_alone(repo, content):
    """A ref that arrived by fetch (or a hand edit) holding anything but one object id: the files
    path writes nothing and leaves no lock; libgit2 decides (its answer is a lost race)."""
    r = GitRepo.discover(repo)
    a, _ = oids(repo)
    bad = repo / ".git" / "refs" / "gitml" / "t" / "bad"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    assert r._cas_files("refs/gitml/t/bad", a, None, None) is None
    assert bad.read_text() == content and locks(repo) == []


def test_junk_lines_in_packed_refs_do_not_break_a_write(repo):
    r = GitRepo.discover(repo)
    a, b = oids(repo)
    git(repo, "update-ref", "refs/gitml/t/p", a)
    git(repo, "pack-refs", "--all", "--prune")
    packed = repo / ".git" / "packed-refs"
    packed.write_text(packed.read_text() + "junk without an id\n^\n\n" + "z" * 5000 + "\n")
    assert r._cas_files("refs/gitml/t/p", b, a, None) is True
    assert (repo / ".git" / "refs" / "gitml" / "t" / "p").read_text() == b + "\n"
