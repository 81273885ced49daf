"""The runs ledger: finished runs live in refs/gitml/ledger/<h>, not one ref each.

Checked with the real git CLI: where runs are, that git keeps them (gc), that a
repository written before the ledger (one ref per run) migrates on its own,
also when the migration is killed part-way, and that the index follows the
ledger incrementally (new, changed, deleted and rewritten entries).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import git, git_run_ids, gitml_cli, run_python, run_rev

MANY = """
import gitml, sys
for i in range(int(sys.argv[1])):
    with gitml.start_run(run_name=f"r{i}"):
        gitml.log_param("i", i)
        gitml.log_metric("loss", 1.0 / (i + 1))
"""


def log_many(repo: Path, n: int) -> None:
    out = subprocess.run([sys.executable, "-c", MANY, str(n)], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def listed(repo: Path) -> dict[str, dict]:
    data = json.loads(gitml_cli(repo, "runs", "list", "--json", "-n", "100000").stdout)
    return {r["info"]["run_id"]: r for r in data}


def own_refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", "refs/gitml/runs/").split()


def unfold(repo: Path) -> list[str]:
    """Turn the repository into what gitml wrote before the ledger: one ref per run, no ledger."""
    ids = git_run_ids(repo)
    lines = "".join(f"create refs/gitml/runs/{r} {run_rev(repo, r)}\n" for r in ids)
    lines += "".join(f"delete {ref}\n" for ref in
                     git(repo, "for-each-ref", "--format=%(refname)", "refs/gitml/ledger/").split())
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    return ids


def test_finished_runs_are_in_the_ledger_and_survive_gc(repo):
    log_many(repo, 20)
    assert own_refs(repo) == []
    ledgers = git(repo, "for-each-ref", "--format=%(refname)", "refs/gitml/ledger/").split()
    assert 1 <= len(ledgers) <= 16
    ids = git_run_ids(repo)
    assert len(ids) == 20 and set(listed(repo)) == set(ids)
    git(repo, "gc", "-q", "--prune=now")
    git(repo, "fsck", "--strict", "--no-dangling")
    for run_id in ids:  # every run commit and its source commit are still there
        commit = run_rev(repo, run_id)
        assert json.loads(git(repo, "show", f"{commit}:run.json"))["run_id"] == run_id
        git(repo, "rev-parse", f"{commit}^")
    assert {r["data"]["params"]["i"] for r in listed(repo).values()} == {str(i) for i in range(20)}


def test_a_live_run_has_its_own_ref_until_it_ends(repo):
    code = ("import gitml, json\nr = gitml.start_run()\ngitml.log_metric('m', 1.0)\ngitml.flush()\n"
            "import subprocess\nprint(subprocess.run(['git', 'for-each-ref', '--format=%(refname)', 'refs/gitml/runs/'], "
            "capture_output=True, text=True).stdout.strip())\ngitml.end_run()\nprint(r.info.run_id)\n")
    out = run_python(code, repo)
    assert out.returncode == 0, out.stderr
    ref, run_id = out.stdout.split()
    assert ref == f"refs/gitml/runs/{run_id}"
    assert own_refs(repo) == [] and git_run_ids(repo) == [run_id]


def test_changing_a_finished_run_refolds_it(repo):
    log_many(repo, 3)
    run_id = git_run_ids(repo)[0]
    before = run_rev(repo, run_id)
    out = run_python(f"import gitml\nc = gitml.Client()\nc.set_tag('{run_id}', 'k', 'v')\n"
                     f"c.update_run('{run_id}', name='renamed')\n", repo)
    assert out.returncode == 0, out.stderr
    assert own_refs(repo) == []
    after = run_rev(repo, run_id)
    assert after != before
    got = listed(repo)[run_id]
    assert got["data"]["tags"]["k"] == "v" and got["info"]["run_name"] == "renamed"
    # the older run commit stays reachable through the ledger's history
    git(repo, "gc", "-q", "--prune=now")
    git(repo, "cat-file", "-e", before)


def test_a_repository_from_before_the_ledger_migrates_on_first_use(repo):
    log_many(repo, 30)
    ids = unfold(repo)
    assert len(own_refs(repo)) == 30
    assert set(listed(repo)) == set(ids)  # the first command reads them, and folds them
    assert own_refs(repo) == [] and git_run_ids(repo) == ids
    assert set(listed(repo)) == set(ids)  # again: nothing to do, same answer


def test_a_half_migrated_repository_completes(repo):
    """What a kill -9 between the ledger's update and the deletion of the run refs leaves:
    both (readers take the ref, the same run); the next command deletes the refs."""
    log_many(repo, 10)
    ids = git_run_ids(repo)
    lines = "".join(f"create refs/gitml/runs/{r} {run_rev(repo, r)}\n" for r in ids[:6])
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    assert len(own_refs(repo)) == 6
    assert set(listed(repo)) == set(ids)
    assert own_refs(repo) == [] and git_run_ids(repo) == ids


def test_migration_killed_at_any_moment_loses_nothing(repo):
    log_many(repo, 200)
    ids = unfold(repo)
    expected = {r: run_rev(repo, r) for r in ids}
    for delay in (0.05, 0.15, 0.3, 0.5):
        proc = subprocess.Popen([sys.executable, "-m", "gitml", "runs", "list", "-n", "1"], cwd=repo,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert git_run_ids(repo) == ids  # every run is somewhere, at every moment
        assert {r: run_rev(repo, r) for r in ids} == expected
    assert set(listed(repo)) == set(ids)
    # A kill inside a ref update leaves its .lock; it is judged stale (and removed) once it is
    # STALE_LOCK_SECONDS old, so the last fold may wait for the next command.
    time.sleep(2.5)
    assert set(listed(repo)) == set(ids)
    assert own_refs(repo) == []
    git(repo, "fsck", "--strict", "--no-dangling")


def test_index_follows_the_ledger_incrementally(repo):
    """The index re-reads only what changed: new runs, a changed run, a deleted run; and a ledger
    shard moved back (rewritten history) is still read right."""
    log_many(repo, 12)
    assert len(listed(repo)) == 12
    log_many(repo, 3)
    runs = listed(repo)
    assert len(runs) == 15
    victim = sorted(runs)[0]
    gitml_cli(repo, "runs", "delete", victim)
    assert victim not in listed(repo)
    out = run_python(f"import gitml\ngitml.Client().set_tag('{sorted(runs)[1]}', 'k', 'v')\n", repo)
    assert out.returncode == 0, out.stderr
    assert listed(repo)[sorted(runs)[1]]["data"]["tags"]["k"] == "v"
    # A shard moved back to an older commit (someone reset it): the index reads it as it is now.
    shard = f"refs/gitml/ledger/{sorted(runs)[1][0]}"
    older = git(repo, "rev-parse", f"{shard}~1").strip()
    git(repo, "update-ref", shard, older)
    now = {r for r in git_run_ids(repo)}
    got = listed(repo)
    assert set(got) == now - {victim}
    if sorted(runs)[1] in got:
        expected = json.loads(git(repo, "show", f"{run_rev(repo, sorted(runs)[1])}:tags.json"))
        assert got[sorted(runs)[1]]["data"]["tags"].get("k") == expected.get("k")


def test_runs_commit_prints_the_commit_plain_git_reads(repo):
    log_many(repo, 2)
    run_id = git_run_ids(repo)[0]
    commit = gitml_cli(repo, "runs", "commit", run_id[:6]).stdout.strip()
    assert commit == run_rev(repo, run_id)
    assert json.loads(git(repo, "show", f"{commit}:run.json"))["run_id"] == run_id


def test_a_forced_fetch_that_replaces_a_shard_loses_no_run(repo, tmp_path):
    """`git fetch +refs/gitml/*:refs/gitml/*` replaces a ledger shard with the remote's copy, which
    lacks this clone's newer runs. The next command puts them back (and keeps the remote's)."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    log_many(repo, 40)  # both clones log runs; with 40 + 40 runs every shard is on both sides
    log_many(other, 40)
    mine, theirs = git_run_ids(repo), git_run_ids(other)
    git(repo, "fetch", "-q", str(other), "+refs/gitml/*:refs/gitml/*")
    assert set(git_run_ids(repo)) != set(mine) | set(theirs)  # plain git dropped some of ours
    out = gitml_cli(repo, "runs", "list", "--json", "-n", "1000")
    assert {r["info"]["run_id"] for r in json.loads(out.stdout)} == set(mine) | set(theirs)
    assert "put back" in out.stderr
    assert set(git_run_ids(repo)) == set(mine) | set(theirs)


def test_changed_entries_are_what_differs_between_the_entries_of_two_ledger_commits(repo):
    """The ledger diff (libgit2's tree diff) against the entries each side lists, on trees that also
    hold what ``entries`` ignores: a blob named like a run, a nested tree, a bad name, a typechange."""
    from gitml.store import ledger as store_ledger
    from gitml.store.repo import GitRepo

    def oid(n: int) -> str:  # a commit to point gitlinks at (mktree --missing takes any id)
        return f"{n:040x}"

    def tree(listing: list[str]) -> str:
        return subprocess.run(["git", "mktree", "--missing"], cwd=repo, input="".join(f"{x}\n" for x in listing),
                              text=True, capture_output=True, check=True).stdout.strip()

    def ledger(subs: dict[str, list[str]], top: list[str] = ()) -> str:  # type: ignore[assignment]
        listing = [f"040000 tree {tree(entries)}\t{head}" for head, entries in subs.items()] + list(top)
        return git(repo, "commit-tree", tree(listing), "-m", "ledger").strip()

    rid = [f"{h}{'0' * 29}{n}" for h in ("ab", "ac", "cd") for n in range(3)]
    (repo / "x.txt").write_text("x")
    blob = git(repo, "hash-object", "-w", "x.txt").strip()
    old = ledger({"ab": [f"160000 commit {oid(1)}\t{rid[0][2:]}", f"160000 commit {oid(2)}\t{rid[1][2:]}",
                         f"100644 blob {blob}\t{rid[2][2:]}"],  # a blob: not an entry
                  "ac": [f"160000 commit {oid(3)}\t{rid[3][2:]}", f"160000 commit {oid(4)}\t{rid[4][2:]}"],
                  "zz": [f"160000 commit {oid(5)}\tnot-a-run-id"]},
                 [f"100644 blob {blob}\tcd"])
    new = ledger({"ab": [f"160000 commit {oid(9)}\t{rid[0][2:]}",  # changed
                         f"100644 blob {blob}\t{rid[1][2:]}",  # a gitlink became a blob: gone
                         f"160000 commit {oid(6)}\t{rid[2][2:]}"],  # a blob became a gitlink: new
                  "ac": [f"160000 commit {oid(3)}\t{rid[3][2:]}"],  # rid[4] removed
                  "cd": [f"160000 commit {oid(7)}\t{rid[6][2:]}",  # a blob at the top became a directory
                         f"040000 tree {tree([f'160000 commit {oid(8)}	x'])}\t{rid[7][2:]}"],  # nested: ignored
                  "zz": [f"160000 commit {oid(6)}\tnot-a-run-id"]})
    handle = GitRepo.discover(repo)
    for a, b in ((old, new), (new, old), (old, old)):
        before, after = store_ledger.entries(handle, a), store_ledger.entries(handle, b)
        expected = {r: after.get(r) for r in set(before) | set(after) if before.get(r) != after.get(r)}
        assert store_ledger.changed_entries(handle, a, b) == expected, (a, b)
    assert store_ledger.changed_entries(handle, old, new) == {rid[0]: oid(9), rid[1]: None, rid[2]: oid(6),
                                                             rid[4]: None, rid[6]: oid(7)}
    assert store_ledger.changed_entries(handle, None, old) == store_ledger.entries(handle, old)
