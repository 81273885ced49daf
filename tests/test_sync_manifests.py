"""What a pull remembers of each run commit's artifacts (``.git/gitml/manifests.sqlite``): a pull
reads only the run commits it has not seen, and still fetches every run's missing files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import gitml_invoke
from tests.test_sync import log_run, team  # noqa: F401 - team: a bare remote, two clones, a DVC remote


def _seen(clone: Path) -> set[str]:
    with sqlite3.connect(clone / ".git" / "gitml" / "manifests.sqlite") as db:
        return {c for (c,) in db.execute("SELECT commit_oid FROM seen")}


def _run_commit(clone: Path, run_id: str) -> str:
    return gitml_invoke(clone, "runs", "commit", run_id).stdout.strip()


def _cached_objects(clone: Path) -> list[Path]:
    return [p for p in (clone / ".git" / "gitml" / "cache").rglob("*") if p.is_file() and len(p.parent.name) == 2]


def _pull(clone: Path) -> dict:
    return json.loads(gitml_invoke(clone, "pull", "--json").stdout)


def test_a_pull_remembers_the_runs_it_read_and_still_fetches_what_the_cache_lost(team):
    a, b, _, _ = team
    ra, rb = log_run(a, "alice"), log_run(a, "bob")
    gitml_invoke(a, "push")
    assert _pull(b)["artifacts_copied"] == 2
    assert _seen(b) == {_run_commit(b, ra), _run_commit(b, rb)}

    # Objects deleted from the cache by hand come back: presence is asked of the cache every time.
    for obj in _cached_objects(b):
        obj.chmod(0o644)
        obj.unlink()
    again = _pull(b)
    assert again["runs_received"] == [] and again["artifacts_copied"] == 2
    got = gitml_invoke(b, "artifacts", "download", ra, "out/alice.bin", "-d", str(b / "dl")).stdout.strip()
    assert Path(got).read_bytes() == b"alice" * 1000

    # A run that arrives later is read once and joins the others.
    rc = log_run(a, "carol")
    gitml_invoke(a, "push")
    assert _pull(b)["runs_received"] == [rc]
    assert _run_commit(b, rc) in _seen(b) and len(_seen(b)) == 3


def _pushed_run_and_cache_path(team) -> tuple[Path, str, Path]:
    """Clone B, a run pushed from A, and where B's manifests file goes (its directory made)."""
    a, b, _, _ = team
    run_id = log_run(a, "alice")
    gitml_invoke(a, "push")
    db = b / ".git" / "gitml" / "manifests.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    return b, run_id, db


def test_a_damaged_manifests_file_is_rebuilt_and_the_pull_goes_on(team):
    b, ra, db = _pushed_run_and_cache_path(team)
    db.write_bytes(b"this is not a database" * 100)
    report = _pull(b)
    assert report["runs_received"] == [ra] and report["artifacts_copied"] == 1
    assert _seen(b) == {_run_commit(b, ra)}


def test_an_unwritable_state_dir_costs_the_cache_not_the_pull(team):
    b, ra, db = _pushed_run_and_cache_path(team)
    db.mkdir()  # a directory where the file should be: sqlite cannot open it
    report = _pull(b)
    assert report["runs_received"] == [ra] and report["artifacts_copied"] == 1
