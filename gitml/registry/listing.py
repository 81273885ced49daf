"""Plain-data views of the registry, shared by ``gitml models ... --json`` and the web viewer."""

from __future__ import annotations

from typing import Any

from gitml.registry.state import ModelState, VersionState, load
from gitml.store.repo import GitRepo


def model_summary(m: ModelState) -> dict[str, Any]:
    """A model's name, latest version and the version holding each stage."""
    latest = m.latest()
    return {
        "name": m.name, "deprecated": m.deprecated, "versions": len(m.active_versions()),
        "latest": latest.version if latest else None,
        "stages": {s: v.version for s, v in sorted(m.stages.items())},
    }


def version_record(v: VersionState, comments: list[Any] | None = None,
                   metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """One version: number, semver, stages, run, commit, tag, who registered it and when."""
    d = {
        "model": v.model, "number": v.number, "version": v.version, "active": v.active,
        "stages": list(v.stages), "run_id": v.run_id, "path": v.path, "commit": v.commit, "tag": v.tag,
        "registered_at": v.registered_at, "author": v.author, "email": v.email, "description": v.message,
    }
    if comments is not None:
        d["comments"] = [vars(c) for c in comments]
    if metrics is not None:
        d["metrics"] = metrics
    return d


def history(repo: GitRepo, models: list[ModelState] | None = None) -> list[dict[str, Any]]:
    """Every registry event and comment of ``models`` (default: all), newest first."""
    from gitml.registry import comments

    rows = []
    for m in models if models is not None else list(load(repo).values()):
        for e in m.events:
            v = m.by_version(e.version) if e.version else m.by_commit(e.commit)
            rows.append({"time": e.time, "model": m.name, "event": e.action, "version": v.version if v else e.version,
                         "stage": e.stage, "author": e.author, "email": e.email, "tag": e.tag,
                         "commit": e.commit, "message": e.text})
        for tag, notes in comments(repo, m.versions).items():
            v = next(x for x in m.versions if x.tag == tag)
            rows.extend({"time": c.time, "model": m.name, "event": "comment", "version": v.version, "stage": None,
                         "author": c.author, "email": c.email, "tag": tag, "commit": v.commit,
                         "message": c.text} for c in notes)
    # oldest first in event order (time, then counter), comments after same-second events; then newest first
    return [r for _, r in sorted(enumerate(rows), key=lambda p: (p[1]["time"], p[0]))][::-1]
