"""PlainGitRepo (the post-commit hook's git access, no libgit2) against GitRepo (libgit2), on real repos.

Every read it overrides answers as GitRepo does on the same repository (loose
and packed refs, symbolic HEAD, trees, blobs, commits, notes, config); its
compare-and-swap ref updates lose races as GitRepo's do; a hostile tree
(an entry that claims to be a tree but names a blob) is a miss, not a crash.
And the hook, run as git runs it, logs its run without loading pygit2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gitml.store.plain import PlainGitRepo
from gitml.store.repo import GitRepo
from tests.conftest import git, gitml_cli, run_python

LOG_TWO = """
import gitml
for i in range(2):
    with gitml.start_run(run_name=f"r{i}"):
        gitml.log_param("i", i)
        gitml.log_metric("loss", 0.5 / (i + 1))
        gitml.set_tag("t", "x")
"""


@pytest.fixture
def logged(repo: Path) -> Path:
    """``repo`` with two finished runs (in the ledger) and their notes."""
    out = run_python(LOG_TWO, repo)
    assert out.returncode == 0, out.stderr
    return repo


def both(path: Path) -> tuple[GitRepo, PlainGitRepo]:
    return GitRepo.discover(path), PlainGitRepo.discover(path)


def test_reads_agree_with_libgit2(logged):
    lib, plain = both(logged)
    refs = git(logged, "for-each-ref", "--format=%(refname)").split()
    assert any(r.startswith("refs/gitml/ledger/") for r in refs) and "refs/notes/gitml" in refs
    for state in ("loose", "packed"):
        if state == "packed":
            git(logged, "pack-refs", "--all", "--prune")
            lib, plain = both(logged)
        for ref in [*refs, "HEAD", "refs/heads/nope", "refs/gitml"]:
            assert plain.ref_target(ref) == lib.ref_target(ref), (state, ref)
        assert plain.head() == lib.head()

    head = lib.ref_target("HEAD")
    assert plain.commit_info(head) == lib.commit_info(head)
    tree = lib.tree_of(head)
    assert plain.tree_of(head) == tree and plain.tree_entries(tree) == lib.tree_entries(tree)
    assert plain.read_path(tree, "train.py") == lib.read_path(tree, "train.py") == b"print('train')\n"
    assert plain.read_path(tree, "missing") is None and plain.tree_entry(tree, "README.md/x") is None
    assert plain.has_object(head) and plain.is_commit(head) and plain.is_tree(tree)
    assert not plain.has_object("0" * 40) and not plain.is_commit(tree)

    ledger = [r for r in refs if r.startswith("refs/gitml/ledger/")][0]
    ledger_tree = lib.tree_of(lib.ref_target(ledger))
    [(sub, sub_oid, is_tree)] = sorted(plain.list_dir(ledger_tree))[:1]
    assert is_tree and sorted(plain.list_dir(ledger_tree)) == sorted(lib.list_dir(ledger_tree))
    [(name, run_commit, _)] = plain.list_dir(ledger_tree, sub)[:1]
    assert plain.tree_entry(ledger_tree, f"{sub}/{name}") == lib.tree_entry(ledger_tree, f"{sub}/{name}")
    files = ("run.json", "params.json", "tags.json", "nope.json")
    assert plain.read_commit_files(run_commit, files) == lib.read_commit_files(run_commit, files)
    assert plain.read_commit_files(tree, files) is None  # not a commit

    assert plain.read_note("refs/notes/gitml", head) == lib.read_note("refs/notes/gitml", head)
    assert "run " in plain.read_note("refs/notes/gitml", head)
    assert plain.read_note("refs/notes/gitml", tree) is None

    git(logged, "config", "Gitml.Some.Key", "Value")
    git(logged, "config", "gitml.noteMetrics", "3")
    lib, plain = both(logged)
    for key in ("user.name", "user.email", "gitml.Some.Key", "gitml.notemetrics", "GITML.NOTEMETRICS", "no.such"):
        assert plain.config_value(key) == lib.config_value(key), key


def test_compare_and_swap_loses_races_as_libgit2_does(logged):
    _, plain = both(logged)
    head = plain.ref_target("HEAD")
    parent = git(logged, "rev-parse", "HEAD^{tree}").strip()  # any object id will do for a ref's target
    assert plain.cas_ref("refs/gitml/test/a", head, None)
    assert not plain.cas_ref("refs/gitml/test/a", head, None)  # exists already
    assert not plain.cas_ref("refs/gitml/test/a", parent, "1" * 40)  # moved since "read"
    assert plain.cas_ref("refs/gitml/test/a", parent, head, also={"refs/gitml/test/b": head})
    assert git(logged, "rev-parse", "refs/gitml/test/a", "refs/gitml/test/b").split() == [parent, head]
    assert not plain.cas_ref("refs/gitml/test/a", None, head)
    assert plain.cas_ref("refs/gitml/test/a", None, parent)
    assert plain.ref_target("refs/gitml/test/a") is None
    assert plain.cas_ref("refs/gitml/test/gone", None, None)


def test_a_ref_update_git_refuses_outright_is_an_error_not_a_lost_race(logged):
    from gitml.store.repo import RefUpdateFailed

    _, plain = both(logged)
    with pytest.raises(RefUpdateFailed, match="refs/gitml/bad"):
        plain.cas_ref("refs/gitml/bad..name", plain.ref_target("HEAD"), None)


def test_a_hostile_tree_entry_naming_a_blob_is_a_miss(logged):
    lib, plain = both(logged)
    blob = git(logged, "rev-parse", "HEAD:train.py").strip()
    raw = b"40000 ab\0" + bytes.fromhex(blob)  # git mktree would refuse this tree: written as is
    tree = subprocess.run(["git", "hash-object", "-t", "tree", "-w", "--literally", "--stdin"], cwd=logged,
                          input=raw, capture_output=True, check=True).stdout.decode().strip()
    for r in (lib, plain):
        assert r.tree_entry(tree, "ab/cd") is None
        assert r.read_path(tree, "ab/cd") is None
    assert plain.list_dir(tree, "ab") == [] and plain.read_note("refs/notes/nope", blob) is None
    assert plain._blob_data(blob) == b"print('train')\n"
    with pytest.raises(KeyError):
        plain._blob_data(tree)
    assert plain.has_object("not-hex\nHEAD") is False  # nothing but an object id reaches git cat-file


HOOK = """
import sys
from gitml.hooks.entry import post_commit
post_commit(".", "HEAD")
print("pygit2" in sys.modules)
"""


def test_the_post_commit_hook_logs_without_libgit2_and_writes_what_libgit2_would(repo):
    (repo / "params.yaml").write_text("lr: 0.1\nlayers: [8, 4]\n")
    (repo / "metrics.json").write_text('{"acc": 0.9}')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "train")
    out = run_python(HOOK, repo)
    assert out.returncode == 0 and "logged run" in out.stderr, out.stderr
    assert out.stdout.strip() == "False"  # pygit2 never loaded

    from gitml.hooks.postcommit import log_commit

    by_libgit2 = log_commit(GitRepo.discover(repo), "HEAD", force=True).run_id
    listed = {r["info"]["run_id"]: r for r in json.loads(gitml_cli(repo, "runs", "list", "--json").stdout)}
    assert len(listed) == 2
    plain_run = next(r for rid, r in listed.items() if rid != by_libgit2)
    lib_run = listed[by_libgit2]
    for run in (plain_run, lib_run):
        run.pop("commit")  # each run commit's own id
        for key in ("run_id", "start_time", "end_time", "artifact_uri"):
            run["info"].pop(key)
    assert plain_run == lib_run
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""
    note = git(repo, "log", "-1", "--notes=gitml", "--format=%N")
    assert note.count("FINISHED") == 2
    # the hook's commits are signed as every gitml commit is: the user's config identity
    assert {*git(repo, "log", "--all", "--format=%an <%ae>", "--", ".").split("\n")} >= {"Test User <test@example.com>"}


def test_hook_with_git_committer_in_the_environment(repo):
    (repo / "metrics.json").write_text('{"acc": 0.5}')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "m")
    out = run_python(HOOK, repo, env={"GIT_COMMITTER_NAME": "CI Bot", "GIT_COMMITTER_EMAIL": "ci@example.com"})
    assert out.returncode == 0 and "logged run" in out.stderr, out.stderr
    who = git(repo, "log", "-1", "--format=%cn <%ce>", "refs/notes/gitml").strip()
    assert who == "CI Bot <ci@example.com>"


def test_cat_file_process_is_restarted_after_it_dies(logged):
    _, plain = both(logged)
    head = plain.ref_target("HEAD")
    assert plain.is_commit(head)
    plain._cat._proc.kill()
    plain._cat._proc.wait()
    assert plain.is_commit(head)  # read again by a new process
    plain.close()
    assert plain.is_commit(head)


def hash_object(repo: Path, kind: str, data: bytes) -> str:
    """Write ``data`` as an object of ``kind`` as is (no checks: a hostile peer's object)."""
    return subprocess.run(["git", "hash-object", "-t", kind, "-w", "--literally", "--stdin"], cwd=repo,
                          input=data, capture_output=True, check=True).stdout.decode().strip()


def test_what_libgit2_ignores_or_reads_is_ignored_or_read_alike(logged):
    """Found in review: replace refs, non-UTF-8 file names, encodings, short ids, HEAD off refs/heads."""
    head = git(logged, "rev-parse", "HEAD").strip()
    tree = git(logged, "rev-parse", "HEAD^{tree}").strip()
    blob = git(logged, "rev-parse", "HEAD:train.py").strip()
    other = hash_object(logged, "blob", b"print('replaced')\n")
    git(logged, "replace", blob, other)  # libgit2 never follows refs/replace/*: a fetch can bring them
    lib, plain = both(logged)
    assert plain.read_path(tree, "train.py") == lib.read_path(tree, "train.py") == b"print('train')\n"

    name = b"caf\xe9.yaml"  # Latin-1 bytes: not UTF-8
    odd = hash_object(logged, "tree", b"100644 " + name + b"\0" + bytes.fromhex(blob))
    text = name.decode("utf-8", "surrogateescape")
    assert plain.read_path(odd, text) == lib.read_path(odd, text) == b"print('train')\n"

    latin = hash_object(logged, "commit", f"tree {tree}\nauthor A <a@b> 1 +0000\ncommitter A <a@b> 1 +0000\n"
                        "encoding ISO-8859-1\n\n".encode() + "café\n".encode("latin-1"))
    assert plain.commit_info(latin).message == lib.commit_info(latin).message == "café\n"

    git(logged, "branch", "cafe")  # cat-file would resolve a short hex string as a ref name: only full ids go
    assert plain.has_object(head.upper()) == lib.has_object(head.upper()) is True
    assert not plain.has_object("cafe") and not plain.has_object(head[:7])  # gitml passes full ids only

    git(logged, "symbolic-ref", "HEAD", "refs/remotes/origin/main")
    git(logged, "update-ref", "refs/remotes/origin/main", head)
    lib, plain = both(logged)
    assert plain.head() == lib.head() == (head, "refs/remotes/origin/main")


def test_hostile_trees_and_commits_are_misses_alike(logged):
    head = git(logged, "rev-parse", "HEAD").strip()
    blob = git(logged, "rev-parse", "HEAD:train.py").strip()
    into_commit = hash_object(logged, "tree", b"40000 a\0" + bytes.fromhex(head))  # a "directory" that is a commit
    odd_mode = hash_object(logged, "tree", b"4_0000 a\0" + bytes.fromhex(blob))
    no_name = hash_object(logged, "tree", b"100644 \0" + bytes.fromhex(blob))
    no_tree = hash_object(logged, "commit", b"author A <a@b> 1 +0000\ncommitter A <a@b> 1 +0000\n\nx\n")
    lib, plain = both(logged)
    for r in (lib, plain):
        assert r.tree_entry(into_commit, "a/train.py") is None and r.read_path(into_commit, "a/train.py") is None
    for tree in (odd_mode, no_name):
        assert plain.list_dir(tree) == [] and plain.read_path(tree, "a") is None
    assert plain.read_commit_files(no_tree, ("run.json",)) is None


def test_a_reader_knocked_out_of_step_finds_its_place_again(logged):
    _, plain = both(logged)
    head = plain.ref_target("HEAD")
    tree = plain.tree_of(head)
    stdin = plain._cat._running().stdin
    stdin.write(head.encode() + b"\n")  # an answer nobody reads (as after an interrupt mid-read)
    stdin.flush()
    assert plain.is_tree(tree) and plain.has_object(head)


def test_notes_are_found_in_every_layout_git_reads(logged):
    head = git(logged, "rev-parse", "HEAD").strip()
    note = git(logged, "rev-parse", f"refs/notes/gitml:{head}").strip()
    lib, plain = both(logged)
    deep = hash_object(logged, "tree", b"100644 " + head[4:].encode() + b"\0" + bytes.fromhex(note))
    mid = hash_object(logged, "tree", b"40000 " + head[2:4].encode() + b"\0" + bytes.fromhex(deep))
    other = "f" * 40
    flat_beside = b"100644 " + other.encode() + b"\0" + bytes.fromhex(note)
    root = hash_object(logged, "tree", b"40000 " + head[:2].encode() + b"\0" + bytes.fromhex(mid) + flat_beside)
    commit = git(logged, "commit-tree", root, "-m", "notes").strip()
    git(logged, "update-ref", "refs/notes/layouts", commit)
    for target in (head, other):
        assert plain.read_note("refs/notes/layouts", target) == lib.read_note("refs/notes/layouts", target)
        assert "run " in plain.read_note("refs/notes/layouts", target)
