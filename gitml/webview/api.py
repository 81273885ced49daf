"""``/api/...``: the JSON the pages are made of (documented in docs/webview.md)."""

from __future__ import annotations

import mimetypes
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from gitml.errors import InvalidValue
from gitml.store.repo import GitRepo
from gitml.webview import data, sampling

bp = Blueprint("api", __name__, url_prefix="/api")

INLINE_TYPES = {**data.IMAGE_TYPES, "txt": "text/plain", "log": "text/plain"}
#: Artifacts up to this size are read and verified whole before they are sent.
VERIFY_FIRST_BYTES = 8 * 1024 * 1024


def repo() -> GitRepo:
    return current_app.config["GITML_REPO"]


def max_count(default: int = 50, limit: int = 1000) -> int:
    return data.int_arg(request.args, "max", default, 1, limit)


@bp.get("/experiments")
def experiments() -> Response:
    return jsonify(data.experiments(repo()))


@bp.get("/runs")
def runs() -> Response:
    return jsonify(data.runs_page(repo(), data.RunsQuery.from_args(request.args)))


@bp.get("/runs.csv")
def runs_csv() -> Response:
    """The runs table as CSV: every matching run, with the page's filter, sort and experiment."""
    response = Response(data.runs_csv(repo(), data.RunsQuery.from_args(request.args)), mimetype="text/csv")
    attachment(response, "runs.csv")
    return response


@bp.get("/runs/<run_id>")
def run(run_id: str) -> Response:
    return jsonify(data.run_detail(repo(), run_id))


@bp.get("/runs/<run_id>/metrics/<path:key>")
def metric(run_id: str, key: str) -> Response:
    offset = data.int_arg(request.args, "offset", 0, 0, 10**12)
    return Response(data.metric_history_json(repo(), run_id, key, offset), mimetype="application/json")


@bp.get("/metrics/sampled")
def sampled_metric() -> Response:
    """Metric ``key`` of up to 100 runs (``run``, repeated), at most ``max_points`` points a run: the chart view's data."""
    args = request.args
    max_points = data.int_arg(args, "max_points", sampling.DEFAULT_POINTS, sampling.MIN_POINTS, sampling.MAX_POINTS)
    key = args.get("key")
    if not key:
        raise InvalidValue("Name the metric: ?key=<metric>&run=<id>...")
    return Response(data.sampled_histories_json(repo(), args.getlist("run"), key, max_points),
                    mimetype="application/json")


@bp.get("/runs/<run_id>/artifacts")
def artifacts(run_id: str) -> Response:
    return jsonify(data.artifact_listing(repo(), run_id, request.args.get("path", "")))


@bp.get("/runs/<run_id>/artifact")
def artifact(run_id: str) -> Response:
    """One artifact file: a download, or shown inline when it is an image or plain text.

    Only files listed in the run's manifest can be named, and their bytes come
    from the content store by hash, so no path reaches the file system. The
    bytes are streamed (a model file can be gigabytes) and their hash checked
    as they go.
    """
    from gitml.tracking.artifacts import list_artifacts, read_artifact, stream_artifact
    from gitml.tracking.validation import validate_artifact_path

    path = validate_artifact_path(request.args.get("path", ""))
    if not path:
        raise InvalidValue("Name the artifact: ?path=<file>")
    size = next((f.file_size for f in list_artifacts(repo(), run_id, path) if f.path == path), None)
    # A file that fits in memory is verified before the first byte goes out (a damaged one is
    # an error response); a bigger one streams, and the stream stops short of its last block
    # if the hash does not match, so the client sees a failed transfer, never a success.
    body: Any = (read_artifact(repo(), run_id, path) if size is not None and size <= VERIFY_FIRST_BYTES
                 else stream_artifact(repo(), run_id, path))
    name = path.rsplit("/", 1)[-1]
    inline_type = INLINE_TYPES.get(data.suffix(path)) if request.args.get("inline") == "1" else None
    response = Response(body, mimetype=inline_type or mimetypes.guess_type(name)[0] or "application/octet-stream")
    if not inline_type:
        attachment(response, name)
    if size is not None:
        response.content_length = size
    # Whatever a file holds, it never runs as a page of this origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    return response


def attachment(response: Response, name: str) -> None:
    """``Content-Disposition: attachment`` for any file name (RFC 6266: an ASCII name plus a UTF-8 one)."""
    import unicodedata
    from urllib.parse import quote

    try:
        name.encode("ascii")
        names = {"filename": name}
    except UnicodeEncodeError:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii") or "download"
        names = {"filename": ascii_name, "filename*": "UTF-8''" + quote(name, safe="!#$&+^`|~")}
    response.headers.set("Content-Disposition", "attachment", **names)


@bp.get("/compare")
def compare() -> Response:
    return jsonify(data.compare(repo(), request.args.getlist("run"), request.args.getlist("better")))


@bp.get("/commits")
def commits() -> Response:
    rev = request.args.get("rev") or "HEAD"
    return jsonify(data.commits(repo(), rev, max_count(), request.args.get("runs_only") == "1"))


@bp.get("/branches")
def branches() -> Response:
    return jsonify(data.branches(repo()))


@bp.get("/diff")
def diff() -> Response:
    args = request.args
    return jsonify(data.diff(repo(), args.get("base") or "HEAD~1", args.get("head") or "HEAD",
                             args.get("pick") or None, args.get("all") == "1", args.getlist("better")))


@bp.get("/models")
def models() -> Response:
    return jsonify(data.models(repo()))


@bp.get("/models/<path:name>")
def model(name: str) -> Response:
    return jsonify(data.model(repo(), name))
