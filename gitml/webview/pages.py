"""The HTML pages. Each renders the dict its ``/api`` twin returns; Jinja escapes every value."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from gitml.errors import GitmlError
from gitml.store.repo import GitRepo
from gitml.webview import data, sampling

bp = Blueprint("pages", __name__)

ATTRIBUTE_COLUMNS = [("attributes.start_time", "Created"), ("attributes.run_name", "Run name"),
                     ("attributes.status", "Status"), ("attributes.user_id", "User")]
DEFAULT_KEY_COLUMNS = 8  # metrics and params shown before the user picks columns


def repo() -> GitRepo:
    return current_app.config["GITML_REPO"]


@bp.app_template_global()
def url_with(**changes: Any) -> str:
    """This page's URL with some query parameters replaced (None removes one; a list repeats it)."""
    args = MultiDict(request.args)
    for key, value in changes.items():
        args.poplist(key)
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                args.add(key, v)
    endpoint: str = request.endpoint  # type: ignore[assignment]  # templates of routed pages call this
    return url_for(endpoint, **(request.view_args or {})) + ("?" + _encode(args) if args else "")


def _encode(args: MultiDict) -> str:
    from urllib.parse import urlencode

    return urlencode(list(args.items(multi=True)))


def quote_key(key: str) -> str:
    """A key as a search identifier part: backquoted, a backquote doubled."""
    return "`" + key.replace("`", "``") + "`"


@bp.get("/")
def home() -> Any:
    return redirect(url_for("pages.runs"))


@bp.get("/runs")
def runs() -> str:
    q = data.RunsQuery.from_args(request.args)
    exps = data.experiments(repo())["experiments"]
    error = None
    try:
        page = data.runs_page(repo(), q, group=True)
    except GitmlError as e:  # a bad filter is shown above an empty table, with the filter kept for editing
        error = e.message
        page = {"total": 0, "page": 1, "per_page": q.per_page, "pages": 1, "runs": [], "children": {},
                "versions": {}, "keys": {"params": [], "metrics": [], "tags": []}}
    chosen = request.args.getlist("col")
    if not chosen:
        chosen = ([f"metrics.{k}" for k in page["keys"]["metrics"][:DEFAULT_KEY_COLUMNS]]
                  + [f"params.{k}" for k in page["keys"]["params"][:DEFAULT_KEY_COLUMNS]])
    columns = [_column(c) for c in chosen if c.partition(".")[0] in ("metrics", "params", "tags")]
    return render_template("runs.html", q=q, page=page, experiments=exps, views=list(data.VIEWS),
                           columns=columns, chosen=set(chosen), attribute_columns=ATTRIBUTE_COLUMNS,
                           direction=_sort_direction(q.order_by), error=error,
                           chart_max_runs=data.MAX_SAMPLED_RUNS, sample_points=sampling.DEFAULT_POINTS)


def _sort_direction(order_by: list[str]) -> Any:
    """For a column's order_by term, "asc"/"desc" if the table is sorted on it (however the URL spelled it)."""
    from gitml.tracking.filters import parse_order_by

    try:
        first = parse_order_by(order_by[:1])[0] if order_by else parse_order_by(["attributes.start_time DESC"])[0]
    except GitmlError:
        first = None

    def direction(term: str) -> str | None:
        key = parse_order_by([term])[0]
        if first is None or (key.kind, key.key) != (first.kind, first.key):
            return None
        return "asc" if first.ascending else "desc"

    return direction


def _column(spec: str) -> dict[str, str]:
    kind, _, key = spec.partition(".")
    return {"spec": spec, "kind": kind, "key": key, "order": f"{kind}.{quote_key(key)}"}


@bp.get("/runs/<run_id>")
def run(run_id: str) -> str:
    detail = data.run_detail(repo(), run_id)
    run_id = detail["run"]["info"]["run_id"]
    children = data.runs_page(repo(), data.RunsQuery(filter=f"tags.`mlflow.parentRunId` = '{run_id}'",
                                                     view="all", per_page=100))["runs"]
    return render_template("run.html", d=detail, run=detail["run"], children=children,
                           versions=_safe(data.versions_of_run, run_id) or [],
                           images=_safe(data.stepped_images, run_id) or {},
                           artifacts=_artifact_root(run_id), models=_safe(data.model_summaries, run_id) or [])


def _artifact_root(run_id: str) -> dict[str, Any]:
    return _safe(data.artifact_listing, run_id, "") or {"path": "", "files": []}


def _safe(fn: Any, *args: Any) -> Any:
    """A side panel that fails (say, artifacts not pulled yet) leaves the rest of the page standing."""
    try:
        return fn(repo(), *args)
    except GitmlError:
        return None


@bp.get("/runs/<run_id>/artifacts")
def artifacts(run_id: str) -> str:
    detail = data.run_detail(repo(), run_id)
    path = request.args.get("path", "")
    listing = data.artifact_listing(repo(), run_id, path)
    shown, preview, error = listing, None, None
    files = listing["files"]
    if len(files) == 1 and not files[0]["is_dir"] and files[0]["path"] == listing["path"]:
        parent = path.rpartition("/")[0]
        shown = data.artifact_listing(repo(), run_id, parent)
        try:
            preview = data.preview(repo(), run_id, path)
        except GitmlError as e:
            error = e.message
    crumbs = []
    parts = (shown["path"] or "").split("/") if shown["path"] else []
    for i, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: i + 1])))
    return render_template("artifacts.html", run=detail["run"], listing=shown, path=path, preview=preview,
                           error=error, crumbs=crumbs)


@bp.get("/compare")
def compare() -> str:
    d = data.compare(repo(), request.args.getlist("run"), request.args.getlist("better"))
    ids = [r["info"]["run_id"] for r in d["runs"]]
    return render_template("compare.html", d=d, run_ids=ids,
                           labels=[r["info"]["run_name"] or r["info"]["run_id"][:8] for r in d["runs"]],
                           api=url_for("api.compare", run=ids))


@bp.get("/commits")
def commits() -> str:
    rev = request.args.get("rev") or "HEAD"
    runs_only = request.args.get("runs_only") == "1"
    d = data.commits(repo(), rev, data.int_arg(request.args, "max", 50, 1, 1000), runs_only)
    return render_template("commits.html", d=d, branches=data.branches(repo()), runs_only=runs_only)


@bp.get("/commits/<oid>")
def commit(oid: str) -> str:
    d = data.commits(repo(), oid, 1)
    c = d["commits"][0]
    parent = c["parents"][0] if c["parents"] else None
    diff = None
    if parent and c["runs"]:
        diff = _safe(data.diff, parent, c["oid"], None, False)
    return render_template("commit.html", c=c, diff=diff, parent=parent)


@bp.get("/diff")
def diff() -> str:
    args = request.args
    base, head = args.get("base") or "", args.get("head") or ""
    pick = args.get("pick") or None
    result, error = None, None
    if base and head:
        try:
            result = data.diff(repo(), base, head, pick, args.get("all") == "1", args.getlist("better"))
        except GitmlError as e:
            error = e.message
    return render_template("diff.html", base=base, head=head, pick=pick or "", d=result, error=error,
                           branches=data.branches(repo()), show_all=args.get("all") == "1")


@bp.get("/models")
def models() -> str:
    return render_template("models.html", d=data.models(repo()))


@bp.get("/models/<path:name>")
def model(name: str) -> str:
    return render_template("model.html", mdl=data.model(repo(), name))
