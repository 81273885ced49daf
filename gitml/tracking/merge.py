"""Merging two copies of the same run (from two clones) into one.

Run commits do not form a history (each flush replaces the commit; its
parent stays the source snapshot), so there is no common ancestor to diff
against. Instead every part of a run merges as a join: a function of the two
copies that does not care which side is ours, and that gives back a copy
unchanged when it already holds the other. So two clones that exchange a
run in any order end with the same run tree, and pushing it back and forth
changes nothing (before, a run whose copies differed flipped on every push).

- tags: per key, the last write wins by the time in ``clock.json`` (ms); a
  deletion is a tombstone with its time, and wins a tie; a tag written at
  the run's creation has time 0. The run name is the ``mlflow.runName`` tag.
- artifacts: per path, the later entry wins (a tie: the larger md5).
- params are write-once: of two different values the smaller one wins, so
  both clones agree (a clash can only come from two machines logging one
  param of one run differently).
- metrics: the union of the points. If one side has them all, its files
  are kept as they are; else the union is written in (step, time) order.
- inputs (datasets): the union by (name, digest); of two entries for one
  dataset, the larger JSON.
- status: a finished run beats a running one; of two finished ones the later
  end wins. Lifecycle (deleted/active): the later change wins.
- anything else that differs (a field gitml does not write): the larger JSON
  value, so the choice is the same on both sides.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, TypeVar

from gitml.store.repo import GitRepo
from gitml.tracking import datasets
from gitml.tracking.entities import RunStatus
from gitml.tracking.runfiles import (
    METRICS_DIR,
    RUN_NAME_TAG,
    RunState,
    is_newer,
    metric_chunk_changes,
    read_state,
)

def _metric_lines(repo: GitRepo, tree: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path, blob in repo.walk_blobs(tree, METRICS_DIR):
        key, _, chunk = path.rpartition("/")
        if chunk.endswith(".tsv"):
            out.setdefault(key, []).extend(repo.read_blob(blob).decode().splitlines(keepends=True))
    return out


_J = TypeVar("_J")


def _json_max(a: _J, b: _J) -> _J:
    return max(a, b, key=lambda v: json.dumps(v, sort_keys=True))


def _merge_info(ours: RunState, theirs: RunState) -> dict[str, Any]:
    o, t = ours.info, theirs.info
    info = {k: o[k] if k not in t or o[k] == t[k] else _json_max(o[k], t[k]) for k in o}
    info.update({k: v for k, v in t.items() if k not in o})

    def finish(i: dict[str, Any]) -> tuple[bool, int, str]:
        status = str(i.get("status", ""))
        return RunStatus.is_terminated(status), i.get("end_time") or 0, status

    winner = max(o, t, key=finish)
    info["status"], info["end_time"] = winner.get("status"), winner.get("end_time")
    if "lifecycle_stage" in o or "lifecycle_stage" in t:
        later = max(o, t, key=lambda i: (i.get("lifecycle_time") or 0, str(i.get("lifecycle_stage", ""))))
        info["lifecycle_stage"] = later.get("lifecycle_stage")
        if later.get("lifecycle_time") is not None:
            info["lifecycle_time"] = later["lifecycle_time"]
    return info


def _tag_version(state: RunState, key: str) -> tuple[int, int, str] | None:
    """(time, kind, value) of a tag's last write on one side; a deletion ranks above a set at one time."""
    candidates = []
    if key in state.tags:
        candidates.append((state.clock.get("tags", {}).get(key, 0), 0, state.tags[key]))
    deleted = state.clock.get("tags_deleted", {})
    if key in deleted:
        candidates.append((deleted[key], 1, ""))
    return max(candidates) if candidates else None


def _merge_tags(merged: RunState, ours: RunState, theirs: RunState) -> None:
    keys = set(ours.tags) | set(theirs.tags)
    keys |= set(ours.clock.get("tags_deleted", {})) | set(theirs.clock.get("tags_deleted", {}))
    merged.tags = {}
    for section in ("tags", "tags_deleted"):
        merged.clock.pop(section, None)
    for key in sorted(keys):
        versions = [v for v in (_tag_version(ours, key), _tag_version(theirs, key)) if v is not None]
        ms, deleted, value = max(versions)
        if deleted:
            merged.clock.setdefault("tags_deleted", {})[key] = ms
        else:
            merged.tags[key] = value
            merged.stamp("tags", key, ms)
    if RUN_NAME_TAG in merged.tags:
        merged.info["run_name"] = merged.tags[RUN_NAME_TAG]


def _merge_artifacts(merged: RunState, ours: RunState, theirs: RunState) -> None:
    merged.artifacts = {}
    merged.clock.pop("artifacts", None)
    for path in sorted(set(ours.artifacts) | set(theirs.artifacts)):
        versions = [(s.clock.get("artifacts", {}).get(path, 0), s.artifacts[path]["md5"], s.artifacts[path])
                    for s in (ours, theirs) if path in s.artifacts]
        ms, _, entry = max(versions, key=lambda v: (v[0], v[1]))
        merged.artifacts[path] = entry.copy()
        merged.stamp("artifacts", path, ms)


def _merge_params(ours: dict[str, str], theirs: dict[str, str]) -> dict[str, str]:
    out = dict(theirs)
    for key, value in ours.items():
        out[key] = min(value, out[key]) if key in out else value
    return out


def _merge_metrics(repo: GitRepo, tree_o: str, tree_t: str) -> dict[str, bytes | None]:
    """Changes to our tree that make its metric files hold the union of both sides' points."""
    lines_o, lines_t = _metric_lines(repo, tree_o), _metric_lines(repo, tree_t)
    changes: dict[str, bytes | None] = {}
    for key in set(lines_o) | set(lines_t):
        mine, other = lines_o.get(key, []), lines_t.get(key, [])
        if mine == other:
            continue
        count_o, count_t = Counter(mine), Counter(other)  # a point logged twice counts twice
        if count_t <= count_o and count_o != count_t:
            continue  # ours has every point already: keep our chunk files
        if count_o <= count_t and count_o != count_t:
            combined = other
        else:  # each has points the other lacks (or the same points in another order)
            combined = sorted((count_o | count_t).elements(), key=_point_order)
        for name, _, is_tree in repo.list_dir(tree_o, f"{METRICS_DIR}/{key}"):
            if not is_tree:
                changes[f"{METRICS_DIR}/{key}/{name}"] = None
        changes.update(metric_chunk_changes(repo, None, {key: combined}))
    return changes


def _point_order(line: str) -> tuple[int, int, str]:
    step, ts, _ = line.split("\t", 2)
    return int(step), int(ts), line


def merge_runs(repo: GitRepo, ours: str, theirs: str, run_id: str | None = None,
               keep_ours: bool = False) -> str:
    """The commit holding the join of run commits ``ours`` and ``theirs``.

    When the joined tree is theirs, their commit is returned, so two clones
    end on one commit, unless ``keep_ours`` (a writer on this machine still
    logs to the run, and its counts in our commit's trailers must stay).

    Raises:
        CorruptRun: either copy is malformed (the caller decides which to keep).
    """
    if ours == theirs:
        return ours
    s_o, tree_o = read_state(repo, ours, run_id)
    s_t, tree_t = read_state(repo, theirs, run_id)
    merged = RunState(
        info=_merge_info(s_o, s_t),
        params=_merge_params(s_o.params, s_t.params),
        summary=dict(s_o.summary),
        writers=dict(s_o.writers),
        clock={},
        inputs=datasets.merge(s_o.inputs, s_t.inputs),
    )
    _merge_tags(merged, s_o, s_t)
    _merge_artifacts(merged, s_o, s_t)
    for key, point in s_t.summary.items():
        if is_newer(point, merged.summary.get(key)):
            merged.summary[key] = point
    changes: dict[str, bytes | None] = dict(merged.files())
    changes.update(_merge_metrics(repo, tree_o, tree_t))
    source = merged.info.get("source") or {}
    parents = [source["commit"]] if source.get("commit") else []
    with repo.batch():  # the merged run's objects as one pack
        tree = repo.update_tree(tree_o, changes)
        if tree == tree_t and not keep_ours:
            return theirs
        if tree == tree_o:
            return ours
        return repo.write_commit(tree, parents, merged.commit_message())
