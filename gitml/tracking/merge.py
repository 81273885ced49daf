"""Merging two versions of the same run (from two clones) into one.

Run commits do not form a history (each flush replaces the commit; its
parent stays the source snapshot), so there is no common ancestor to diff
against. Runs only ever grow, though, so a union is the right merge:

- params, tags, artifacts: union; on a conflict ours wins;
- metrics: union of points, ours first, then the points only theirs has;
- status: a finished run beats a running one; of two finished ones the later
  end wins; lifecycle (deleted/active): the later change wins.

When one side already contains the other, that side's commit is returned
unchanged, so a plain fast-forward writes nothing.
"""

from __future__ import annotations

from gitml.store.repo import GitRepo
from gitml.tracking.entities import RunStatus
from gitml.tracking.runfiles import (
    METRICS_DIR,
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


def _merge_info(ours: RunState, theirs: RunState) -> dict:
    info = dict(ours.info)
    o, t = ours.info, theirs.info
    o_done, t_done = RunStatus.is_terminated(o.get("status", "")), RunStatus.is_terminated(t.get("status", ""))
    if t_done and (not o_done or (t.get("end_time") or 0) > (o.get("end_time") or 0)):
        info["status"], info["end_time"] = t["status"], t.get("end_time")
    if (t.get("lifecycle_time") or 0) > (o.get("lifecycle_time") or 0):
        info["lifecycle_stage"], info["lifecycle_time"] = t.get("lifecycle_stage"), t.get("lifecycle_time")
    return info


def merge_runs(repo: GitRepo, ours: str, theirs: str) -> str:
    """The commit holding the union of run commits ``ours`` and ``theirs``."""
    if ours == theirs:
        return ours
    s_o, tree_o = read_state(repo, ours)
    s_t, tree_t = read_state(repo, theirs)
    merged = RunState(
        info=_merge_info(s_o, s_t),
        params={**s_t.params, **s_o.params},
        tags={**s_t.tags, **s_o.tags},
        summary=dict(s_o.summary),
        writers=dict(s_o.writers),
        artifacts={**s_t.artifacts, **s_o.artifacts},
    )
    merged.info["run_name"] = merged.tags.get("mlflow.runName", merged.info.get("run_name"))
    for key, point in s_t.summary.items():
        if is_newer(point, merged.summary.get(key)):
            merged.summary[key] = point
    lines_o, lines_t = _metric_lines(repo, tree_o), _metric_lines(repo, tree_t)
    metric_changes: dict[str, bytes | None] = {}
    for key in set(lines_o) | set(lines_t):
        mine, other = lines_o.get(key, []), lines_t.get(key, [])
        seen = set(mine)
        extra = [ln for ln in other if ln not in seen]
        if not extra:
            continue  # ours has every point already: keep our chunk files
        combined = mine + extra
        for name, _, is_tree in repo.list_dir(tree_o, f"{METRICS_DIR}/{key}"):
            if not is_tree:
                metric_changes[f"{METRICS_DIR}/{key}/{name}"] = None
        metric_changes.update(metric_chunk_changes(repo, None, {key: combined}))
    changes: dict[str, bytes | None] = dict(merged.files())
    changes.update(metric_changes)
    tree = repo.update_tree(tree_o, changes)
    if tree == tree_o:
        return ours
    if tree == tree_t:
        return theirs
    source = merged.info.get("source") or {}
    parents = [source["commit"]] if source.get("commit") else []
    return repo.write_commit(tree, parents, merged.commit_message())
