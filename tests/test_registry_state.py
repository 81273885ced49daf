"""The registry's state rules, folded from made-up events: no repository, no git, no tags.

``registry.state.build`` turns registry events (what the tags say) into
model states. These tests feed it events directly, so each rule is checked
in microseconds; the tests in test_registry.py check that real tags, written
by gitml and read by GTO, produce these events.
"""

from __future__ import annotations

import pytest

from gitml.registry import tags as grammar
from gitml.registry.state import MODEL_PATH_TRAILER, RUN_TRAILER, Event, build

C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


def event(tag: str, commit: str, time: int, message: str = "") -> Event:
    parsed = grammar.parse(tag)
    assert parsed is not None, tag
    return Event(tag=tag, oid=f"{time:040x}", model=parsed.model, action=parsed.action, version=parsed.version,
                 stage=parsed.stage, counter=parsed.counter, commit=commit, author="A", email="a@example.com",
                 time=time, offset=0, message=message)


def fold(*events: Event) -> dict:
    return build(sorted(events, key=lambda e: e.sort_key))


def test_versions_are_numbered_in_registration_order_and_keep_their_trailers():
    rf = fold(event("rf@v0.1.0", C2, 20), event("rf@v0.0.1", C1, 10,
                                                   f"first\n\n{MODEL_PATH_TRAILER} model\n{RUN_TRAILER} abc"))["rf"]
    assert [(v.number, v.version, v.commit) for v in rf.versions] == [(1, "v0.0.1", C1), (2, "v0.1.0", C2)]
    first = rf.by_version("v0.0.1")
    assert (first.path, first.run_id, first.message) == ("model", "abc", "first")
    assert rf.latest().version == "v0.1.0"


def test_same_second_registrations_order_by_semver_not_by_name():
    rf = fold(event("rf@v0.0.10", C2, 10), event("rf@v0.0.2", C1, 10))["rf"]
    assert [v.version for v in rf.versions] == ["v0.0.2", "v0.0.10"]


def test_a_deregistered_version_keeps_its_number_and_loses_its_stage():
    rf = fold(event("rf@v0.0.1", C1, 10), event("rf@v0.0.2", C2, 11), event("rf#prod#1", C1, 12),
              event("rf@v0.0.1!#2", C1, 13))["rf"]
    assert [(v.number, v.active) for v in rf.versions] == [(1, False), (2, True)]
    assert "prod" not in rf.stages
    assert rf.latest().version == "v0.0.2"


def test_a_stage_moves_and_unassign_clears_it():
    events = [event("rf@v0.0.1", C1, 10), event("rf@v0.0.2", C2, 11),
              event("rf#prod#1", C1, 12), event("rf#prod!#2", C1, 13), event("rf#prod#3", C2, 14)]
    rf = fold(*events)["rf"]
    assert rf.stages["prod"].version == "v0.0.2" and rf.by_version("v0.0.2").stages == ["prod"]
    rf = fold(*events[:4])["rf"]
    assert rf.stages == {} and rf.next_counter == 3


def test_two_holders_of_one_stage_resolve_to_the_higher_semver():
    # GTO's rule: several versions may carry a stage; the highest version holds it.
    rf = fold(event("rf@v0.0.1", C1, 10), event("rf@v0.0.2", C2, 11),
              event("rf#prod#2", C2, 12), event("rf#prod#3", C1, 13))["rf"]
    assert rf.stages["prod"].version == "v0.0.2"


def test_a_stage_on_an_unregistered_commit_is_history_only():
    rf = fold(event("rf@v0.0.1", C1, 10), event("rf#prod#1", C3, 11))["rf"]
    assert rf.stages == {} and len(rf.events) == 2


def test_a_stage_dated_before_its_registration_still_counts():
    rf = fold(event("rf#prod#1", C1, 9), event("rf@v0.0.1", C1, 10))["rf"]
    assert rf.stages["prod"].version == "v0.0.1"


@pytest.mark.parametrize("last, deprecated", [("rf@deprecated#3", True), ("rf@v0.0.2", False)])
def test_a_model_is_deprecated_while_its_latest_event_is_a_deprecation(last, deprecated):
    rf = fold(event("rf@v0.0.1", C1, 10), event("rf@deprecated#2", C1, 11), event(last, C2, 12))["rf"]
    assert rf.deprecated is deprecated


def test_models_fold_independently_and_counters_span_every_tag_name():
    models = fold(event("rf@v0.0.1", C1, 10), event("gb@v1.0.0", C2, 10), event("rf#prod#7", C1, 11))
    assert sorted(models) == ["gb", "rf"]
    assert models["rf"].next_counter == 8 and models["gb"].next_counter == 1
    models["gb"].tag_names.add("gb#prod#41")  # a lightweight tag gitml cannot read still counts
    assert models["gb"].next_counter == 42


def test_stage_spelling_follows_the_tags():
    rf = fold(event("rf@v0.0.1", C1, 10), event("rf#Prod#1", C1, 11))["rf"]
    assert rf.stage_name("prod") == "Prod" and rf.stage_name("staging") == "staging"
