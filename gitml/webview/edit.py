"""Edits from the viewer: rename a run, describe it, tag it, delete or restore it; move a registry
stage (alias) and comment on a version.

Every edit goes through the same domain functions as the CLI
(``tracking.runs`` for runs, ``registry`` for models), so it lands as git objects:
a run commit, a registry tag, a note, versioned and pushable like any other.

Safety, in this order, for every request here:

- writes are on only when the app was made with ``writes=True`` (``gitml ui``
  turns them on by default on a loopback address; ``--read-only`` turns
  them off; another address needs ``--allow-writes``), else 403;
- POST only (Flask answers 405 to anything else);
- the Host header check of every request (``_check_host``) already ran;
- a browser that says where the request comes from (``Sec-Fetch-Site``,
  ``Origin``) must say this origin: a cross-site form post is refused;
- the form's ``csrf_token`` must equal the server's, a random value made
  when the server starts and given only to its own pages.

A refused or failed edit changes nothing.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, request, url_for

from gitml.errors import GitmlError, InvalidValue
from gitml.tracking import runs as _runs

bp = Blueprint("edit", __name__)

#: The form field and the header a page's script may use instead.
TOKEN_FIELD = "csrf_token"
TOKEN_HEADER = "X-CSRF-Token"


class EditRefused(GitmlError):
    """The viewer refused an edit (read-only, or the request is not from its own page)."""

    http_status = 403
    error_code = "PERMISSION_DENIED"


@bp.before_request
def _guard() -> None:
    if not current_app.config.get("GITML_WRITES"):
        raise EditRefused("This viewer is read-only (gitml ui --read-only, or bound to a non-loopback address "
                          "without --allow-writes)")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise EditRefused(f"Edits must come from the viewer's own pages (this request is {site})")
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower()):
        raise EditRefused(f"Edits must come from the viewer's own pages, not from {origin}")
    sent = request.form.get(TOKEN_FIELD) or request.headers.get(TOKEN_HEADER) or ""
    token = current_app.config["GITML_CSRF_TOKEN"]
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise EditRefused("The form is out of date or not from this viewer (its CSRF token does not match): "
                          "reload the page and try again")


def _repo() -> Any:
    return current_app.config["GITML_REPO"]


def _field(name: str, *, required: bool = True) -> str:
    value = request.form.get(name, "")
    if required and not value.strip():
        raise InvalidValue(f"The form needs a {name}")
    return value


def _back(endpoint: str, **values: Any) -> Any:
    return redirect(url_for(endpoint, **values), code=303)


# -- runs: the CLI's functions (gitml runs rename|describe|tag|untag|delete|restore) ----------------


@bp.post("/runs/<run_id>/rename")
def rename_run(run_id: str) -> Any:
    _runs.rename_run(_repo(), run_id, _field("name").strip())
    return _back("pages.run", run_id=run_id)


@bp.post("/runs/<run_id>/describe")
def describe_run(run_id: str) -> Any:
    _runs.describe_run(_repo(), run_id, _field("description", required=False).strip())
    return _back("pages.run", run_id=run_id)


@bp.post("/runs/<run_id>/tag")
def tag_run(run_id: str) -> Any:
    _runs.set_run_tag(_repo(), run_id, _field("key").strip(), _field("value", required=False))
    return _back("pages.run", run_id=run_id)


@bp.post("/runs/<run_id>/untag")
def untag_run(run_id: str) -> Any:
    _runs.delete_run_tag(_repo(), run_id, _field("key"))
    return _back("pages.run", run_id=run_id)


@bp.post("/runs/<run_id>/delete")
def delete_run(run_id: str) -> Any:
    _runs.set_lifecycle(_repo(), run_id, "deleted")
    return _back("pages.run", run_id=run_id)


@bp.post("/runs/<run_id>/restore")
def restore_run(run_id: str) -> Any:
    _runs.set_lifecycle(_repo(), run_id, "active")
    return _back("pages.run", run_id=run_id)


# -- the registry -----------------------------------------------------------------------------------


@bp.post("/models/<path:name>/stage")
def set_stage(name: str) -> Any:
    from gitml import registry

    registry.assign(_repo(), name, _field("version").strip(), _field("stage").strip(),
                    _field("message", required=False) or None)
    return _back("pages.model", name=name)


@bp.post("/models/<path:name>/comment")
def comment(name: str) -> Any:
    from gitml import registry

    registry.comment(_repo(), name, _field("version").strip(), _field("text"))
    return _back("pages.model", name=name)

