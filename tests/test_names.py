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
