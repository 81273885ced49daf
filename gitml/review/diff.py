"""Params and metrics of two sides, side by side: ``gitml diff`` and the data behind ``gitml report``.

A side is a run id (or unique prefix), or a revision (commit, branch, tag):
the run picked among that commit's runs. A commit with no run of its own
stands for its nearest ancestor that has one (within 200 commits) (a merge commit
on the base branch usually has none), and the side says so.

Which run a commit stands for, when it has several: ``latest`` (the newest
start), or ``best:<metric>`` / ``best:<metric>:max`` (lowest, or highest,
value of that metric). Set per call with ``--pick``, or for the repository
with ``git config gitml.diff.pick``.

The JSON shape is DVC's (``dvc metrics diff --json``): ``{key: {"old",
"new", "diff"}}``, grouped as ``params`` and ``metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitml.errors import InvalidValue
from gitml.store.repo import GitRepo
from gitml.tracking.entities import Run

ANCESTOR_LIMIT = 200


@dataclass
class Side:
    """One side of a diff: what was asked, and the run standing for it (None if there is none)."""

    ref: str
    run: Run | None
    commit: str | None
    note: str = ""

    @property
    def label(self) -> str:
        if self.run is None:
            return f"{self.ref} (no run)"
        return f"{self.ref} (run {self.run.info.run_id[:8]}{', ' + self.note if self.note else ''})"

    @property
    def params(self) -> dict[str, str]:
        return dict(self.run.data.params) if self.run else {}

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.run.data.metrics) if self.run else {}


def parse_pick(pick: str | None) -> tuple[str, str | None, bool]:
    """``latest`` | ``best:<metric>[:min|max]`` -> (rule, metric, higher_is_better).

    Raises:
        InvalidValue
    """
    pick = (pick or "latest").strip()
    if pick == "latest":
        return "latest", None, False
    parts = pick.split(":")
    if parts[0] == "best" and len(parts) in (2, 3) and parts[1] and (len(parts) == 2 or parts[2] in ("min", "max")):
        return "best", parts[1], len(parts) == 3 and parts[2] == "max"
    raise InvalidValue(f"Invalid pick rule {pick!r}: use latest, best:<metric> (lowest) or best:<metric>:max")


def choose(runs: list[Run], pick: str | None) -> Run | None:
    """The run a commit stands for, by the pick rule; top-level runs first (a nested run stands in only
    when the commit has nothing else), as a sweep's parent run is what its commit is about."""
    rule, metric, higher = parse_pick(pick)
    if not runs:
        return None
    runs = [r for r in runs if not _nested(r)] or runs
    if rule == "latest":
        return max(runs, key=lambda r: (r.info.start_time, r.info.run_id))
    scored = [r for r in runs if metric in r.data.metrics and not math.isnan(r.data.metrics[metric])]
    if not scored:
        return max(runs, key=lambda r: (r.info.start_time, r.info.run_id))
    return (max if higher else min)(scored, key=lambda r: r.data.metrics[metric])  # type: ignore[index]


def _nested(run: Run) -> bool:
    return bool(run.data.tags.get("mlflow.parentRunId"))


def why(runs: list[Run], chosen: Run, pick: str | None) -> str:
    """Why ``chosen`` stands for its commit among ``runs`` ("" when it is the only run)."""
    if len(runs) <= 1:
        return ""
    rule, metric, higher = parse_pick(pick)
    top = [r for r in runs if not _nested(r)]
    pool = top or runs
    if rule == "best" and metric in chosen.data.metrics:
        reason = f"{'highest' if higher else 'lowest'} {metric} of {len(pool)} runs"
    else:
        reason = f"latest of {len(pool)} runs"
    if top and len(top) < len(runs):
        reason += f"; {len(runs) - len(top)} nested left out"
    return reason


def default_pick(repo: GitRepo) -> str:
    return repo.config_value("gitml.diff.pick") or "latest"


def resolve_side(repo: GitRepo, ref: str, pick: str | None = None, exclude: str | None = None) -> Side:
    """The run ``ref`` stands for: a run id/prefix, or a revision's (or nearest ancestor's) picked run.

    ``exclude`` is a run id not to pick (the other side of a bare ``gitml diff``).

    Raises:
        RevisionNotFound: ``ref`` is neither a run nor a revision.
    """
    from gitml.errors import AmbiguousRunId, RunNotFound
    from gitml.tracking import runs
    from gitml.tracking.history import RevisionNotFound

    commit = repo.resolve_rev(ref)
    if commit is None:
        try:
            run = runs.get_run(repo, ref)
        except (RunNotFound, AmbiguousRunId, InvalidValue) as e:
            raise RevisionNotFound(f"{ref!r} is neither a commit, branch or tag nor a run id ({e})") from None
        return Side(ref, run, run.commit)
    pick = pick or default_pick(repo)
    ancestors = [c.oid for c in repo.walk(commit, ANCESTOR_LIMIT)]
    index = runs.sync_index(repo)
    by_commit = index.runs_for_commits(ancestors)  # ids, oldest first
    for oid in ancestors:
        ids = [i for i in by_commit.get(oid, []) if i != exclude]
        found = [r for r in index.load(ids) if r.info.lifecycle_stage == "active"]
        if found:
            chosen = choose(found, pick)
            assert chosen is not None
            notes = [why(found, chosen, pick), "" if oid == commit else f"from ancestor {oid[:8]}"]
            return Side(ref, chosen, oid, "; ".join(n for n in notes if n))
    return Side(ref, None, commit)


def latest_run(repo: GitRepo) -> Side:
    """The newest active run of the repository (the 'work tree' side of a bare ``gitml diff``)."""
    from gitml.tracking import runs

    found = runs.search_runs(repo, None, order_by=["attributes.start_time DESC"], max_results=1)

    run = found[0] if found else None
    return Side("latest run", run, run.commit if run else None)


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def metric_directions(repo: GitRepo, old: Side, new: Side,
                      overrides: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The direction (lower/higher/None) of every metric of either side (see ``direction``)."""
    from gitml.review.direction import directions

    return dict(directions(repo, set(old.metrics) | set(new.metrics), overrides))  # type: ignore[arg-type]


def compare(old: Side, new: Side, include_unchanged: bool = False,
            directions: Mapping[str, str | None] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"params": {key: {old, new[, diff]}}, "metrics": {key: {old, new, diff}}}`` (DVC's shape).

    ``diff`` is new - old where both are numbers; changed or one-sided
    entries only unless ``include_unchanged``. With ``directions`` (metric
    -> lower/higher, see ``direction``), a metric whose change can be
    judged also gets ``"verdict": "better"|"worse"``.
    """
    from gitml.review.direction import verdict

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for section, a, b in (("params", old.params, new.params), ("metrics", old.metrics, new.metrics)):
        rows = {}
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if va == vb and not include_unchanged:
                continue
            row: dict[str, Any] = {"old": va, "new": vb}
            na, nb = _number(va), _number(vb)
            if na is not None and nb is not None and (section == "metrics" or va != vb):
                row["diff"] = nb - na
            elif section == "metrics":
                row["diff"] = None
            if section == "metrics" and directions:
                judged = verdict(directions.get(key), row["diff"])  # type: ignore[arg-type]
                if judged:
                    row["verdict"] = judged
            rows[key] = row
        out[section] = rows
    return out


# -- formatting ------------------------------------------------------------------------------


def _fmt(value: Any, precision: int) -> str:
    if value is None:
        return "-"
    n = _number(value)
    if n is None or isinstance(value, str) and not _looks_numeric(value):
        return str(value)
    return f"{n:.{precision}g}"


def _looks_numeric(text: str) -> bool:
    return _number(text) is not None


def _change(row: dict[str, Any], precision: int) -> tuple[str, str]:
    d = row.get("diff")
    if d is None:
        return "-", ""
    na = _number(row.get("old"))
    rel = f"{d / abs(na) * 100:+.{max(1, precision - 3)}f}%" if na not in (None, 0.0) else ""
    return f"{d:+.{precision}g}", rel


def render(result: dict[str, dict[str, dict[str, Any]]], old: Side, new: Side, fmt: str = "table",
           precision: int = 5) -> str:
    """The comparison as ``table``, ``markdown`` or ``json``."""
    import json

    if fmt == "json":
        return json.dumps(result, indent=2, sort_keys=True, default=str)
    rows = []
    judged = any("verdict" in row for row in result.get("metrics", {}).values())
    for section in ("metrics", "params"):
        for key, row in result.get(section, {}).items():
            change, rel = _change(row, precision)
            rows.append([section[:-1], key, _fmt(row["old"], precision), _fmt(row["new"], precision), change, rel]
                        + ([row.get("verdict", "")] if judged else []))
    headers = ["", "name", old.label, new.label, "change", "%"] + (["verdict"] if judged else [])
    if fmt == "markdown":
        lines = ["| " + " | ".join(h or "kind" for h in headers) + " |", "|" + "---|" * len(headers)]
        for r in rows:
            lines.append("| " + " | ".join(_md(c) for c in r) + " |")
        if not rows:
            lines.append("| | no changes | | | | |")
        return "\n".join(lines)
    if fmt != "table":
        raise InvalidValue(f"Invalid format {fmt!r}: use table, markdown or json")
    if not rows:
        return f"No changes between {old.label} and {new.label}"
    cells = [headers] + rows
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _md(cell: str) -> str:
    return str(cell).replace("|", "\\|").replace("\n", " ")
