"""The names gitml owns in git round-trip through their parse functions."""

from __future__ import annotations

import uuid

from gitml.store import names


def test_run_ref_round_trip():
    run_id = uuid.uuid4().hex
    assert names.parse_run_ref(names.run_ref(run_id)) == run_id


def test_experiment_ref_round_trip():
    assert names.parse_experiment_ref(names.experiment_ref("123456789")) == "123456789"


def test_parse_rejects_other_refs():
    assert names.parse_run_ref("refs/heads/main") is None
    assert names.parse_run_ref(names.RUNS_PREFIX + "NOT-A-RUN") is None
    assert names.parse_run_ref(names.RUNS_PREFIX + "a" * 31) is None
    assert names.parse_experiment_ref(names.EXPERIMENTS_PREFIX + "abc") is None


def test_gc_fetch_ref_round_trip():
    for remote in ("origin", "https://example.com/team/repo.git", "/srv/git/x"):
        prefix = names.gc_fetch_prefix(remote)
        assert names.valid_ref_name(prefix + "heads/main")
        assert names.parse_gc_fetch_ref(prefix + "heads/main") == "refs/heads/main"
    assert names.gc_fetch_prefix("a/b") != names.gc_fetch_prefix("a-b")
    assert names.parse_gc_fetch_ref("refs/heads/main") is None
    assert names.parse_gc_fetch_ref(names.GC_FETCH_PREFIX + "origin-12345678") is None
