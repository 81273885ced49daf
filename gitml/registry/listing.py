"""Plain-data views of the registry, shared by ``gitml models ... --json`` and the web viewer."""

from __future__ import annotations

from typing import Any

from gitml.registry.metadata import ModelMeta, VersionMeta
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
                   metrics: dict[str, float] | None = None, meta: VersionMeta | None = None) -> dict[str, Any]:
    """One version: number, semver, stages, run, commit, tag, who registered it and when, its
    description (the latest one set, else the tag message) and tags."""
    from gitml.registry.entities import version_tags

    d = {
        "model": v.model, "number": v.number, "version": v.version, "active": v.active,
        "stages": list(v.stages), "run_id": v.run_id, "path": v.path, "commit": v.commit, "tag": v.tag,
        "registered_at": v.registered_at, "author": v.author, "email": v.email,
        "description": meta.description if meta is not None and meta.described else v.message,
        "tags": version_tags(v, meta),
    }
    if comments is not None:
        d["comments"] = [vars(c) for c in comments]
    if metrics is not None:
        d["metrics"] = metrics
    return d


def list_models(repo: GitRepo, show_all: bool = False) -> list[dict[str, Any]]:
    """``model_summary`` of every model, by name: those with tags (deprecated ones if ``show_all``)
    and those created with no version yet."""
    from gitml import registry

    states = load(repo)
    found = {name: model_summary(m) for name, m in states.items() if show_all or not m.deprecated}
    for m in registry.registered_models(repo):
        if m.name not in found:
            found[m.name] = model_summary(m.state or ModelState(m.name))
    return [found[name] for name in sorted(found)]


def show(repo: GitRepo, name: str, show_all: bool = False) -> dict[str, Any]:
    """A model: its stages, description, tags, and versions (with deregistered ones if ``show_all``)
    with comments and their runs' metrics.

    Raises:
        ModelNotRegistered
    """
    from gitml import registry
    from gitml.registry import metadata

    model = find_model(repo, name)
    meta = metadata.read(repo, [name])[name]
    versions = [v for v in model.versions if show_all or v.active]
    notes = registry.comments(repo, versions)
    metrics = registry.run_metrics(repo, versions)
    return {
        "name": model.name, "deprecated": model.deprecated,
        "description": meta.description, "tags": {k: v for k, v in sorted(meta.tags.items()) if v is not None},
        "stages": {s: v.version for s, v in sorted(model.stages.items())},
        "versions": [version_record(v, notes.get(v.tag, []), metrics[v.tag], meta.version(v.version))
                     for v in versions],
    }


def find_model(repo: GitRepo, name: str) -> ModelState:
    """A model with tags (deprecated or not), or one created with no version yet (empty state).

    Raises:
        ModelNotRegistered
    """
    from gitml import registry

    try:
        return registry.get_model(repo, name)
    except registry.ModelNotRegistered:
        return registry.registered(repo, name).state or ModelState(name)


def _meta_rows(meta: ModelMeta) -> list[dict[str, Any]]:
    rows = []
    for e in meta.events:
        d = e.data
        if e.op == "tag":
            text = f"{d['key']}={d['value']}" if d.get("value") is not None else f"{d['key']} deleted"
        elif e.op == "rename":
            text = f"renamed to {d.get('to')}"
        elif e.op == "create":
            text = f"renamed from {d['from']}" if d.get("from") else (d.get("description") or "")
        else:
            text = d.get("value") or ""
        rows.append({"time": e.time // 1000, "model": meta.name, "event": e.op, "version": d.get("version"),
                     "stage": None, "author": d.get("author") or "", "email": d.get("email") or "", "tag": None,
                     "commit": None, "message": text})
    return rows


def history(repo: GitRepo, models: list[ModelState] | None = None) -> list[dict[str, Any]]:
    """Every registry event, metadata change and comment of ``models`` (default: all), newest first."""
    from gitml.registry import comments, metadata

    if models is None:
        from gitml import registry

        states = load(repo)
        models = list(states.values()) + [ModelState(m.name) for m in registry.registered_models(repo)
                                          if m.name not in states]
    keyed: list[tuple[int, dict[str, Any]]] = []  # (ms, row): tag times are seconds, metadata's ms
    for meta in metadata.read(repo, [m.name for m in models]).values():
        keyed.extend((e.time, row) for e, row in zip(meta.events, _meta_rows(meta)))
    for m in models:
        for e in m.events:
            # a model-level event (deprecate) is about no version, whatever commit its tag is on
            model_level = e.action in ("deprecate", "create")
            v = None if model_level else m.by_version(e.version) if e.version else m.by_commit(e.commit)
            keyed.append((e.time * 1000, {
                "time": e.time, "model": m.name, "event": e.action, "version": v.version if v else e.version,
                "stage": e.stage, "author": e.author, "email": e.email, "tag": e.tag, "commit": e.commit,
                "message": e.text}))
        for tag, notes in comments(repo, m.versions).items():
            v = next(x for x in m.versions if x.tag == tag)
            keyed.extend((c.time * 1000 + 999, {
                "time": c.time, "model": m.name, "event": "comment", "version": v.version, "stage": None,
                "author": c.author, "email": c.email, "tag": tag, "commit": v.commit, "message": c.text})
                for c in notes)
    # oldest first in event order (time, then counter), comments after same-second events; then newest first
    return [r for _, _, r in sorted((ms, i, r) for i, (ms, r) in enumerate(keyed))][::-1]
