"""The web viewer: a read-only Flask app over one repository (``gitml ui``).

``create_app(repo_path)`` builds the app; ``pages`` renders HTML, ``api``
answers JSON, both from the functions in ``data``. Every route is GET: the
viewer never changes the repository.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import os
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, g, jsonify, render_template, request, url_for
from markupsafe import Markup

from gitml.errors import GitmlError

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"]

# No inline script anywhere: data reaches the page's JavaScript through data-* attributes.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def create_app(repo_path: str | os.PathLike[str] | None = None, *, allowed_hosts: list[str] | None = None,
               writes: bool = False, csrf_token: str | None = None) -> Flask:
    """The viewer for the repository at ``repo_path`` (default: the one around the cwd).

    ``allowed_hosts`` limits the Host header the app answers (names, IPv4 or
    IPv6 addresses, without ports; None: any). ``gitml ui`` on a loopback
    address passes the loopback names, so a web page that rebinds its DNS
    name to 127.0.0.1 gets no data. ``writes`` turns on the edit forms and
    their POST routes (``edit``), guarded by ``csrf_token`` (one per server,
    the same in every worker; a random one if not given).

    Raises:
        NotARepository: no git repository there.
    """
    from gitml.tracking import runs

    repo = runs.open_read_only(repo_path)
    app = Flask(__name__)
    app.config["GITML_REPO"] = repo
    app.config["GITML_ALLOWED_HOSTS"] = {_bracketed(h.lower()) for h in allowed_hosts} if allowed_hosts else None
    app.config["GITML_WRITES"] = writes
    app.config["GITML_CSRF_TOKEN"] = csrf_token or secrets.token_urlsafe(32)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.jinja_env.filters.update(time=format_time, ms=format_ms, num=format_num, short=format_short, full=format_full, duration=format_duration,
                                 size=format_size)
    app.jinja_env.globals.update(repo_name=(repo.workdir or repo.git_dir).name, writes=writes,
                                 csrf_token=app.config["GITML_CSRF_TOKEN"] if writes else "")
    app.jinja_env.filters.update(markdown=render_markdown)
    app.jinja_env.globals.update(run_url=run_url, commit_url=commit_url)

    from gitml.webview import api, edit, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(edit.bp, url_prefix="/edit")
    app.register_error_handler(GitmlError, _gitml_error)
    app.register_error_handler(404, _http_error)
    app.register_error_handler(405, _http_error)
    app.register_error_handler(500, _internal_error)
    app.before_request(_check_host)
    app.after_request(_secure_headers)
    return app


def run_url(run_id: str) -> str:
    """``url_for("pages.run", run_id=...)`` at a tenth of the cost: a runs page links 50-100 runs."""
    return _url_prefix("pages.run", "run_id") + quote(run_id, safe="")


def commit_url(oid: str) -> str:
    """``url_for("pages.commit", oid=...)``, as ``run_url``."""
    return _url_prefix("pages.commit", "oid") + quote(oid, safe="")


def _url_prefix(endpoint: str, arg: str) -> str:
    """What ``url_for(endpoint)`` puts before the last path part ``arg`` (once per request)."""
    key = f"_prefix_{endpoint}"
    prefix = g.get(key)
    if prefix is None:
        values: dict[str, Any] = {arg: "x"}
        url = url_for(endpoint, **values)
        if not url.endswith("/x"):
            raise RuntimeError(f"{endpoint}'s URL does not end with its {arg}: {url}")
        prefix = url[:-1]
        setattr(g, key, prefix)
    return str(prefix)


def _bracketed(host: str) -> str:
    """An IPv6 address as it appears in a Host header: ``::1`` -> ``[::1]``."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_name(header: str) -> str:
    """The host of a Host header, without its port: ``[::1]:5050`` -> ``[::1]``, ``Localhost:80`` -> ``localhost``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if ":" in header else header


def _check_host() -> tuple[Response | str, int] | None:
    allowed = current_app.config["GITML_ALLOWED_HOSTS"]
    if allowed is None or host_name(request.host) in allowed:
        return None
    return _error(400, "INVALID_HOST", f"This viewer does not answer to the host name {request.host!r}: open it as "
                  "http://127.0.0.1:<port>/ or start it with --allowed-hosts")


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _error(status: int, code: str, message: str) -> tuple[Response | str, int]:
    if _wants_json():
        return jsonify(error_code=code, message=message), status
    return render_template("error.html", status=status, message=message), status


def _gitml_error(e: GitmlError) -> tuple[Response | str, int]:
    status = e.http_status if 400 <= e.http_status < 600 else 500
    return _error(status, e.error_code, e.message)


def _http_error(e: Any) -> tuple[Response | str, int]:
    code = "ENDPOINT_NOT_FOUND" if e.code == 404 else "METHOD_NOT_ALLOWED"
    if e.code == 404:
        message = "No such page"
    elif current_app.config.get("GITML_WRITES"):
        message = "Only GET requests are answered here (edits are POSTs from the viewer's own forms, under /edit/)"
    else:
        message = "The viewer is read-only: only GET requests are answered"
    return _error(e.code, code, message)


def _internal_error(e: Any) -> tuple[Response | str, int]:
    original = getattr(e, "original_exception", None) or e
    return _error(500, "INTERNAL_ERROR", f"Unexpected {type(original).__name__}: {original}")


def _secure_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


# -- formatting for templates -------------------------------------------------------------------


def render_markdown(text: str | None) -> Markup:
    """A description as HTML: CommonMark with raw HTML shown as text and unsafe links (javascript:...) dropped."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).render(text or ""))


def format_time(seconds: float | None) -> str:
    """ISO 8601 in UTC (the page's script shows it in the reader's time zone)."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_ms(ms: int | None) -> str:
    return "" if ms is None else format_time(ms / 1000)


def format_num(value: Any) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_short(value: Any) -> str:
    """A table cell's number: 4 significant digits (the full value goes in its title)."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return format_num(value)


def format_full(value: Any) -> str:
    """Every digit of a number, for a tooltip."""
    return repr(value) if isinstance(value, float) else format_num(value)


def format_duration(run: dict[str, Any]) -> str:
    info = run["info"]
    if not info.get("start_time"):
        return ""
    end = info.get("end_time") or int(dt.datetime.now().timestamp() * 1000)
    seconds = max(0, (end - info["start_time"]) // 1000)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def format_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)
