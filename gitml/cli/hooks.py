"""``gitml hooks``: install, remove and inspect gitml's git hooks, and the hooks' own entry points."""

from __future__ import annotations

import sys

import click

from gitml.cli.output import echo_json, echo_table
from gitml.cli.progress import json_option

_WHICH = [
    click.option("--post-commit", "post_commit", is_flag=True,
                 help="Only the post-commit hook (logs a run when a commit changes params/metrics files)."),
    click.option("--pre-push", "pre_push", is_flag=True,
                 help="Only the pre-push hook (pushes runs, notes and registry tags with the branch)."),
]


def _which(f):  # type: ignore[no-untyped-def]
    for option in reversed(_WHICH):
        f = option(f)
    return f


def _names(post_commit: bool, pre_push: bool) -> tuple[str, ...]:
    picked = tuple(n for n, on in (("post-commit", post_commit), ("pre-push", pre_push)) if on)
    return picked or ("post-commit", "pre-push")


def _path(ctx: click.Context) -> str:
    return ctx.find_root().obj.get("repo_path") or "."


def _warn(message: str) -> None:
    click.echo(f"gitml: warning: {message}", err=True)


@click.group()
def hooks() -> None:
    """Git hooks: log runs on commit, push runs with the branch."""


_DONE = {
    "installed": "installed",
    "updated": "updated",
    "unchanged": "already installed",
    "removed": "removed",
    "restored": "removed; your own hook is back",
    "absent": "not installed",
}


def _report(changes: list, ctx: click.Context, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        echo_json([vars(c) for c in changes])
    else:
        for c in changes:
            if c.action == "conflict":
                click.echo(f"Error: {c.name}: {c.message}", err=True)
                continue
            chained = c.chained and c.action != "restored"
            extra = f" (runs your {c.name} hook first, kept as {c.chained})" if chained else ""
            click.echo(f"{c.name}: {_DONE[c.action]}{extra}: {c.path}")
    if any(c.action == "conflict" for c in changes):
        ctx.exit(1)


@hooks.command()
@_which
@json_option("Print what changed as JSON.")
@click.pass_context
def install(ctx: click.Context, post_commit: bool, pre_push: bool, as_json: bool) -> None:
    """Install gitml's hooks (default: both), chaining any hook already there.

    The hooks go into the directory git uses (core.hooksPath included) and
    call this gitml's Python by its absolute path. Installing again is safe.
    """
    from gitml.hooks import install as api

    _report(api.install(_path(ctx), _names(post_commit, pre_push)), ctx, as_json)


@hooks.command()
@_which
@json_option("Print what changed as JSON.")
@click.pass_context
def uninstall(ctx: click.Context, post_commit: bool, pre_push: bool, as_json: bool) -> None:
    """Remove gitml's hooks (default: both) and put back the hooks they chained."""
    from gitml.hooks import install as api

    _report(api.uninstall(_path(ctx), _names(post_commit, pre_push)), ctx, as_json)


@hooks.command()
@json_option()
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show which of gitml's hooks are installed, where, and the hooks they chain."""
    from gitml.hooks import config
    from gitml.hooks import install as api
    from gitml.store.gitcli import hooks_dir

    states = api.status(_path(ctx))
    if as_json:
        echo_json([vars(s) for s in states])
        return
    click.echo(f"hooks directory: {hooks_dir(_path(ctx))}")
    rows = []
    for s in states:
        python = "" if s.python is None else s.python + ("" if s.python_exists else " (missing)")
        rows.append([s.name, s.state, s.chained or "", python])
    echo_table(["HOOK", "STATE", "CHAINED", "PYTHON"], rows)
    if any(s.python and not s.python_exists for s in states):
        _warn("a hook calls a Python that is gone; run 'gitml hooks install' again")
    keys = ", ".join(s.key for s in config.SETTINGS.values())
    click.echo(f"settings: git config {keys} (see docs/hooks.md)")


@hooks.group()
def run() -> None:
    """Entry points the installed hook scripts call (not needed by hand)."""


@run.command("post-commit")
@click.option("--rev", default="HEAD", show_default=True, help="The commit to log a run for.")
@click.option("--force", is_flag=True, help="Log a run even if the commit has one from the hook already.")
@click.pass_context
def run_post_commit(ctx: click.Context, rev: str, force: bool) -> None:
    """Log a run for the new commit from the params/metrics files it changed. Never fails.

    A commit that has a run from the hook already (an active one) gets no
    second run, unless --force.
    """
    from gitml.hooks import entry

    ctx.exit(entry.post_commit(_path(ctx), rev, force=force))


@run.command("pre-push")
@click.argument("remote")
@click.argument("url", required=False)
@click.pass_context
def run_pre_push(ctx: click.Context, remote: str, url: str | None) -> None:
    """Push runs, notes and registry tags to REMOTE; reads git's pre-push lines on stdin.

    A failure is a warning and exit 0, unless git config gitml.hooks.strict
    is true: then it exits 1 and git stops the push.
    """
    from gitml.hooks import entry

    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    ctx.exit(entry.pre_push(_path(ctx), remote, stdin))
