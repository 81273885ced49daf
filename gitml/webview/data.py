"""What the viewer shows, as plain JSON-ready data: one function per API route.

The HTML pages render the same dicts the ``/api`` routes return, so a page
and its API answer never disagree. Nothing here imports flask; every value
that reaches a page is escaped there (Jinja autoescape) or set as text by the
browser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import GitmlError, InvalidValue, NotFound
from gitml.registry import tags as registry_tags
from gitml.store.repo import GitRepo
from gitml.tracking import history
from gitml.tracking import runs as _runs
from gitml.tracking.sysmetrics import PREFIX as SYSTEM_PREFIX
from gitml.tracking.entities import VIEWS, Run, RunStatus, ViewType
from gitml.webview import sampling

PER_PAGE = 50
MAX_PER_PAGE = 1000
PREVIEW_BYTES = 512 * 1024
CSV_PREVIEW_ROWS = 200
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
               "webp": "image/webp", "bmp": "image/bmp"}
TEXT_SUFFIXES = {"txt", "log", "md", "py", "yaml", "yml", "toml", "cfg", "ini", "sh", "json", "csv", "tsv",
                 "html", "xml", "svg", "js", "css", "mlmodel", "r", "sql", "ipynb", "rst", "out", "err"}


def number(value: Any) -> Any:
    """JSON has no NaN or infinity: those become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_record(run: Run) -> dict[str, Any]:
    d = run.to_dictionary()
    d["data"]["metrics"] = {k: number(v) for k, v in d["data"]["metrics"].items()}
    return d


# -- experiments and the runs table -------------------------------------------------------------


def experiments(repo: GitRepo) -> dict[str, Any]:
    from gitml.tracking.experiments import list_experiments

    return {"experiments": [
        {"experiment_id": e.experiment_id, "name": e.name, "lifecycle_stage": e.lifecycle_stage,
         "tags": dict(e.tags), "creation_time": e.creation_time}
        for e in list_experiments(repo, ViewType.ALL)
    ]}


def int_arg(args: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidValue(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise InvalidValue(f"{name} must be between {low} and {high}, not {value}")
    return value


@dataclass
class RunsQuery:
    """The runs table's state, as it travels in the URL."""

    experiment_ids: list[str] = field(default_factory=list)
    filter: str = ""
    order_by: list[str] = field(default_factory=list)
    view: str = "active"
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_args(cls, args: Any) -> RunsQuery:
        """From a werkzeug MultiDict (anything with ``get`` and ``getlist``)."""
        view = args.get("view") or "active"
        if view not in VIEWS:
            raise InvalidValue(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
        return cls(
            experiment_ids=[e for e in args.getlist("experiment_id") if e],
            filter=(args.get("filter") or "").strip(),
            order_by=[o for o in args.getlist("order_by") if o.strip()],
            view=view,
            page=int_arg(args, "page", 1, 1, 10**9),
            per_page=int_arg(args, "per_page", PER_PAGE, 1, MAX_PER_PAGE),
        )


def runs_page(repo: GitRepo, q: RunsQuery, group: bool = False) -> dict[str, Any]:
    """One page of the runs table; ``group`` moves the nested runs of the page's parents under them
    (``children``: parent id -> runs), as MLflow's table groups them."""
    with _runs.synced_once():
        total, found = _runs.search_runs_page(
            repo, q.experiment_ids or None, q.filter, VIEWS[q.view], q.order_by,
            offset=(q.page - 1) * q.per_page, limit=q.per_page,
        )
        # MLflow's grouping: a parent's nested runs under it (expandable), not as rows of their own
        page_ids = [r.info.run_id for r in found]
        nested = _runs.child_runs(repo, page_ids, VIEWS[q.view]) if group else {}
        keys = _runs.run_keys(repo, q.experiment_ids or None)
    grouped = {c.info.run_id for cs in nested.values() for c in cs}
    rows = [r for r in found if r.info.run_id not in grouped]
    return {
        "total": total, "page": q.page, "per_page": q.per_page, "pages": max(1, -(-total // q.per_page)),
        "runs": [run_record(r) for r in rows],
        "children": {p: [run_record(c) for c in cs] for p, cs in nested.items()},
        "keys": keys,
        # registered model versions made from the page's runs (MLflow's "Models" column)
        "versions": versions_of_runs(repo, set(page_ids) | grouped),
    }


# -- one run ------------------------------------------------------------------------------------


def commit_record(repo: GitRepo, oid: str | None) -> dict[str, Any] | None:
    c = history.commit(repo, oid)
    if c is None:
        return None
    return {"oid": c.oid, "short": c.oid[:8], "summary": c.message.split("\n", 1)[0], "message": c.message,
            "author": c.author_name, "email": c.author_email, "time": c.time, "parents": list(c.parents)}


def run_detail(repo: GitRepo, run_id: str) -> dict[str, Any]:
    from gitml.tracking.experiments import get_experiment

    run = _runs.get_run(repo, run_id)
    try:
        experiment_name = get_experiment(repo, run.info.experiment_id).name
    except GitmlError:
        experiment_name = None
    return {
        "run": run_record(run),
        "experiment_name": experiment_name,
        "source_commit": commit_record(repo, run.source.get("commit")),
        "metric_keys": sorted(run.data.metrics),
        # system metrics (log_system_metrics) get charts of their own, below the run's own
        "system_metric_keys": sorted(k for k in run.data.metrics if k.startswith(SYSTEM_PREFIX)),
        "live": run.info.status == RunStatus.RUNNING,
        # RUNNING with no process logging it: crashed, or created by a client and never ended
        "writer_alive": run.info.status == RunStatus.RUNNING and _runs.has_live_writer(repo, run.info.run_id),
    }


def versions_of_run(repo: GitRepo, run_id: str) -> list[dict[str, Any]]:
    """The registered model versions made from this run (what MLflow's run page lists as registered models)."""
    return versions_of_runs(repo, {run_id}).get(run_id, [])


def versions_of_runs(repo: GitRepo, run_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Run id -> the registered model versions made from it, for the runs in ``run_ids`` that have any."""
    from gitml import registry

    out: dict[str, list[dict[str, Any]]] = {}
    for m in registry.load(repo).values():
        for v in m.versions:
            if v.run_id in run_ids:
                out.setdefault(v.run_id, []).append({"model": v.model, "version": v.version, "number": v.number,
                                                     "stages": list(v.stages), "active": v.active})
    return out


def runs_csv(repo: GitRepo, q: RunsQuery) -> str:
    """Every run the query matches (all pages) as MLflow's search_runs table, in CSV."""
    _, found = _runs.search_runs_page(repo, q.experiment_ids or None, q.filter, VIEWS[q.view], q.order_by,
                                      offset=0, limit=100_000)
    return _runs.runs_to_dataframe(found).to_csv(index=False)


def metric_history_json(repo: GitRepo, run_id: str, key: str, offset: int = 0) -> str:
    """The points of metric ``key`` from the ``offset``-th on, as the JSON text of the API's answer.

    Built from the stored text without turning 100k tokens into floats and
    back: the tokens are JSON numbers already (``read_metric_tokens`` checks),
    but for NaN and infinities, which become null.
    """
    import json

    run = _runs.get_run(repo, run_id)
    run_id = run.info.run_id
    steps, times, values = _runs.metric_tokens(repo, run, key)
    if not steps and key not in run.data.metrics:
        raise NotFound(f"Run {run_id} has no metric {key!r}")

    def array(part: list[str]) -> str:
        return "[" + ",".join(part[offset:]) + "]"

    finite = array(values).replace("-inf", "null").replace("inf", "null").replace("nan", "null")
    head = json.dumps({"run_id": run_id, "key": key, "offset": offset, "total": len(steps)})
    return f'{head[:-1]}, "steps": {array(steps)}, "timestamps": {array(times)}, "values": {finite}}}'


#: Runs one sampled-history request may name (the chart view draws at most this many; MLflow's limit too).
MAX_SAMPLED_RUNS = 100
#: Sampled histories kept per process, as JSON text: ~20 KB a run at 500 points, so ~800 runs' worth.
SAMPLE_CACHE_CHARS = 16 * 1024 * 1024
SAMPLE_CACHE = sampling.TextCache(SAMPLE_CACHE_CHARS)


def sampled_histories_json(repo: GitRepo, run_ids: list[str], key: str,
                           max_points: int = sampling.DEFAULT_POINTS) -> str:
    """Metric ``key`` of each run, at most ``max_points`` points a run (``sampling.sample_indexes``), as JSON text.

    One answer for the runs of the chart view, in the order asked:
    ``{"key", "max_points", "runs": [{"run_id", "total", "steps",
    "timestamps", "values"}...]}``. A run without the metric has ``total`` 0
    and empty arrays; ``total`` is how many points the run logged, so
    ``total > len(values)`` says it was sampled. NaN and infinities are null.

    Raises:
        InvalidValue: no runs, more than ``MAX_SAMPLED_RUNS``, or max_points out of bounds.
        InvalidName: a run id is not 32 hex digits, or the key is not a metric key.
        RunNotFound: no run with that id.
    """
    import json

    from gitml.tracking.validation import validate_metric_key, validate_run_id

    if not run_ids:
        raise InvalidValue("Name the runs: ?run=<id>&run=<id>...")
    if len(run_ids) > MAX_SAMPLED_RUNS:
        raise InvalidValue(f"At most {MAX_SAMPLED_RUNS} runs a request, not {len(run_ids)}")
    if not sampling.MIN_POINTS <= max_points <= sampling.MAX_POINTS:
        raise InvalidValue(f"max_points must be between {sampling.MIN_POINTS} and {sampling.MAX_POINTS}, "
                           f"not {max_points}")
    key = validate_metric_key(key)
    ids = [validate_run_id(r) for r in run_ids]  # before any lookup: a bad id costs nothing
    parts = [_sampled_run_json(repo, _runs.get_run(repo, run_id), key, max_points) for run_id in ids]
    head = json.dumps({"key": key, "max_points": max_points})
    return f'{head[:-1]}, "runs": [{", ".join(parts)}]}}'


def _sampled_run_json(repo: GitRepo, run: Run, key: str, max_points: int) -> str:
    import json

    from gitml.tracking.runfiles import read_metric_columns

    cache_key = (str(run.commit), key, str(max_points))
    text = SAMPLE_CACHE.get(cache_key)
    if text is not None:
        return text
    steps: list[int] = []
    times: list[int] = []
    values: list[float] = []
    if key in run.data.metrics:
        steps, times, values = read_metric_columns(repo, repo.commit_info(run.commit).tree, key)  # type: ignore[arg-type]
    keep = sampling.sample_indexes(values, max_points)
    text = json.dumps({"run_id": run.info.run_id, "total": len(values), "steps": [steps[i] for i in keep],
                       "timestamps": [times[i] for i in keep], "values": [number(values[i]) for i in keep]})
    SAMPLE_CACHE.put(cache_key, text)
    return text


def stepped_images(repo: GitRepo, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The run's time-stepped images (``log_image(key=, step=)``, MLflow's layout) by key, by step."""
    from gitml.tracking import artifacts

    return artifacts.stepped_images(artifacts.manifest(repo, run_id))


def artifact_listing(repo: GitRepo, run_id: str, path: str) -> dict[str, Any]:
    from gitml.tracking.artifacts import ArtifactNotFound, list_artifacts
    from gitml.tracking.validation import validate_artifact_path

    path = validate_artifact_path(path)
    files = list_artifacts(repo, run_id, path)
    if path and not files:
        raise ArtifactNotFound(f"Run {run_id} has no artifact {path!r}")
    return {"path": path, "files": [vars(f) for f in files]}


def suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else name.lower()


def preview(repo: GitRepo, run_id: str, path: str) -> dict[str, Any]:
    """How the artifact browser shows one file: image, table, JSON, text, or only a download link."""
    import json

    from gitml.tracking.artifacts import read_artifact_head

    kind = suffix(path)
    if kind in IMAGE_TYPES:
        return {"kind": "image", "path": path}
    if kind not in TEXT_SUFFIXES:
        return {"kind": "binary", "path": path}
    head, size = read_artifact_head(repo, run_id, path, PREVIEW_BYTES)
    truncated = size > PREVIEW_BYTES
    text = head.decode("utf-8", errors="replace")
    if kind in ("csv", "tsv"):
        import csv

        try:
            rows = list(csv.reader(text.splitlines()[: CSV_PREVIEW_ROWS + 1], delimiter="\t" if kind == "tsv" else ","))
        except csv.Error:  # not the table its name says (a field over csv's limit, say): shown as text
            rows = None
        if rows is not None:
            return {"kind": "table", "path": path, "header": rows[0] if rows else [], "rows": rows[1:],
                    "truncated": truncated or len(text.splitlines()) > CSV_PREVIEW_ROWS + 1}
    if kind == "json" and not truncated:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to indent: shown as it is
            pass
    return {"kind": "text", "path": path, "text": text, "truncated": truncated}


def model_summaries(repo: GitRepo, run_id: str) -> list[dict[str, Any]]:
    """Each MLmodel file among the run's artifacts: flavors, signature, when and by which tool it was saved."""
    import yaml

    from gitml.tracking.artifacts import manifest, read_artifact

    out: list[dict[str, Any]] = []
    for path in sorted(p for p in manifest(repo, run_id) if p == "MLmodel" or p.endswith("/MLmodel")):
        try:
            spec = yaml.safe_load(read_artifact(repo, run_id, path)) or {}
        except Exception as e:  # noqa: BLE001 - a broken or unpulled file is shown, not fatal to the page
            out.append({"path": path, "directory": path.rpartition("/")[0], "error": str(e)})
            continue
        if not isinstance(spec, dict):
            out.append({"path": path, "directory": path.rpartition("/")[0], "error": "MLmodel is not a mapping"})
            continue
        signature = spec.get("signature") or {}
        out.append({
            "path": path, "directory": path.rpartition("/")[0],
            "flavors": sorted((spec.get("flavors") or {}).keys()),
            "python_version": ((spec.get("flavors") or {}).get("python_function") or {}).get("python_version"),
            "created": spec.get("utc_time_created"), "model_uuid": spec.get("model_uuid"),
            "inputs": _signature_columns(signature.get("inputs")),
            "outputs": _signature_columns(signature.get("outputs")),
        })
    return out


def _signature_columns(raw: Any) -> list[dict[str, str]]:
    import json

    try:
        cols = json.loads(raw) if isinstance(raw, str) else raw or []
    except ValueError:
        return []
    return [{"name": str(c.get("name", "")), "type": str(c.get("type", c.get("tensor-spec", "")))}
            for c in cols if isinstance(c, dict)]


# -- compare, commits, diff ---------------------------------------------------------------------


def compare(repo: GitRepo, run_ids: list[str], better: list[str] | None = None) -> dict[str, Any]:
    from gitml.review.direction import parse_overrides

    if not run_ids:
        raise InvalidValue("Pick runs to compare: /compare?run=<id>&run=<id>")
    found = list({run.info.run_id: run for run in (_runs.get_run(repo, r) for r in run_ids)}.values())

    def table(get: Any) -> dict[str, dict[str, Any]]:
        keys = sorted({k for r in found for k in get(r)})
        out = {}
        for k in keys:
            values = [number(get(r).get(k)) for r in found]
            out[k] = {"values": values, "changed": len({repr(v) for v in values}) > 1}
        return out

    metrics = table(lambda r: r.data.metrics)
    _mark_best(repo, metrics, parse_overrides(better or []))
    return {"runs": [run_record(r) for r in found], "params": table(lambda r: r.data.params),
            "metrics": metrics, "tags": table(lambda r: r.data.tags)}


def _mark_best(repo: GitRepo, metrics: dict[str, dict[str, Any]], overrides: Mapping[str, Any]) -> None:
    """Each metric row with a direction gets ``direction`` and, if its values differ, the ``best`` and
    ``worst`` positions (every run that ties)."""
    from gitml.review.direction import directions

    ways = directions(repo, metrics, overrides)
    for key, row in metrics.items():
        way = ways.get(key)
        values = [v for v in row["values"] if isinstance(v, (int, float))]
        row["direction"] = way
        if way is None or len(set(values)) < 2:
            continue
        best, worst = (min(values), max(values)) if way == "lower" else (max(values), min(values))
        row["best"] = [i for i, v in enumerate(row["values"]) if v == best]
        row["worst"] = [i for i, v in enumerate(row["values"]) if v == worst]


def commits(repo: GitRepo, rev: str, max_count: int, runs_only: bool = False) -> dict[str, Any]:
    out = []
    for c, rs in history.commit_log(repo, rev, max_count, runs_only):
        rec = commit_record(repo, c.oid) or {}
        rec["runs"] = [{"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
                        "dirty": bool(r.source.get("dirty")),
                        "metrics": {k: number(v) for k, v in sorted(r.data.metrics.items())}} for r in rs]
        out.append(rec)
    return {"rev": rev, "commits": out}


def branches(repo: GitRepo) -> dict[str, Any]:
    """Local branches and tags (registry tags left out), for the diff page's pickers."""
    head, heads, tags = history.revisions(repo)
    return {"head": head, "branches": heads, "tags": [t for t in tags if registry_tags.parse(t) is None]}


def _side(side: Any) -> dict[str, Any]:
    return {"ref": side.ref, "label": side.label, "commit": side.commit, "note": side.note,
            "run": run_record(side.run) if side.run else None}


def diff(repo: GitRepo, base: str, head: str, pick: str | None, show_all: bool = False,
         better: list[str] | None = None) -> dict[str, Any]:
    """Two sides compared; ``better`` are ``<metric>:lower|higher`` directions that win over git config and names."""
    from gitml.review import diff as review
    from gitml.review.direction import parse_overrides

    overrides = parse_overrides(better or [])
    new = review.resolve_side(repo, head, pick)
    old = review.resolve_side(repo, base, pick, exclude=new.run.info.run_id if new.run else None)
    result = review.compare(old, new, include_unchanged=show_all,
                            directions=review.metric_directions(repo, old, new, overrides))
    for section in result.values():
        for row in section.values():
            for k in ("old", "new", "diff"):
                if k in row:
                    row[k] = number(row[k])
    return {"base": _side(old), "head": _side(new), **result}


# -- registry -----------------------------------------------------------------------------------


def models(repo: GitRepo) -> dict[str, Any]:
    from gitml import registry
    from gitml.registry import listing

    return {"models": [listing.model_summary(m) for _, m in sorted(registry.load(repo).items())]}


def model(repo: GitRepo, name: str) -> dict[str, Any]:
    from gitml import registry
    from gitml.registry import listing

    m = registry.get_model(repo, name)
    notes = registry.comments(repo, m.versions)
    metrics = registry.run_metrics(repo, m.versions)
    return {
        **listing.model_summary(m),
        "versions": [listing.version_record(v, notes.get(v.tag, []), {k: number(x) for k, x in metrics[v.tag].items()})
                     for v in reversed(m.versions)],
        "history": listing.history(repo, [m]),
    }
