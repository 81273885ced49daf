"""``gitml push``, ``gitml pull`` and ``gitml remote``."""

from __future__ import annotations

from typing import Any

import click

from gitml.cli.output import echo_json, echo_table
from gitml.cli.progress import Bars, json_option, quiet_option
from gitml.cli.repo import repo_from


def _run(ctx: click.Context, action: Any, remote: str, artifact_remote: str | None, as_json: bool, quiet: bool,
         verb: str) -> Any:
    """One sync action with a progress bar for the artifact transfer, then its report."""
    with Bars(quiet) as bars:
        report = action(repo_from(ctx), remote, artifact_remote, bars)
    _print_report(report, as_json, verb)
    return report


def _print_report(report: Any, as_json: bool, verb: str) -> None:
    if as_json:
        echo_json(vars(report))
        return
    runs = report.runs_sent if verb == "push" else report.runs_received
    click.echo(f"{verb}: {len(runs)} runs {'sent to' if verb == 'push' else 'received from'} {report.remote}"
               + (f", {len(report.runs_merged)} merged" if report.runs_merged else "")
               + f"; notes {report.notes}")
    tags = report.tags_sent if verb == "push" else report.tags_received
    if tags:
        click.echo(f"registry: {len(tags)} tags {'sent' if verb == 'push' else 'received'}")
    for old, new in sorted(report.tags_renumbered.items()):
        click.echo(f"registry: your unpublished {old} is now {new} (the remote had {old} already)")
    for tag, why in sorted(report.tag_conflicts.items()):
        click.echo(f"warning: registry tag {tag}: {why}", err=True)
    if report.artifact_remote:
        click.echo(f"artifacts: {report.artifacts_copied} objects copied ({report.artifact_remote})")
    for run_id, paths in sorted(report.artifacts_missing.items()):
        click.echo(f"warning: run {run_id[:12]}: artifacts not on the artifact remote: {', '.join(sorted(paths))}", err=True)
    for ref, why in sorted(report.refs_rejected.items()):
        click.echo(f"warning: {ref} rejected by {report.remote}: {why}", err=True)


@click.command()
@click.argument("remote", default="origin")
@click.option("-r", "--artifact-remote", default=None, help="DVC remote for artifacts (default: the default one).")
@json_option("Print a JSON report.")
@quiet_option
@click.pass_context
def push(ctx: click.Context, remote: str, artifact_remote: str | None, as_json: bool, quiet: bool) -> None:
    """Push runs, experiments, notes and registry tags to a git REMOTE, and artifacts to the DVC remote."""
    from gitml import sync

    report = _run(ctx, sync.push, remote, artifact_remote, as_json, quiet, "push")
    if report.refs_rejected or report.tag_conflicts:
        ctx.exit(1)


@click.command()
@click.argument("remote", default="origin")
@click.option("-r", "--artifact-remote", default=None, help="DVC remote for artifacts (default: the default one).")
@json_option("Print a JSON report.")
@quiet_option
@click.pass_context
def pull(ctx: click.Context, remote: str, artifact_remote: str | None, as_json: bool, quiet: bool) -> None:
    """Pull runs, experiments, notes and registry tags from a git REMOTE (merging), and their artifacts."""
    from gitml import sync

    _run(ctx, sync.pull, remote, artifact_remote, as_json, quiet, "pull")


@click.group()
def remote() -> None:
    """gitml's own artifact (DVC) remotes, kept in git config; DVC's remotes are listed too."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-d", "--default", "make_default", is_flag=True, help="Make it the default artifact remote.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A DVC remote option, e.g. endpointurl=http://127.0.0.1:9000 (repeatable).")
@json_option("Print the remote added as JSON.")
@click.pass_context
def remote_add(ctx: click.Context, name: str, url: str, make_default: bool, options: tuple[str, ...],
               as_json: bool) -> None:
    """Add an artifact remote NAME at URL (a directory, s3://, gs://, azure://, ssh://...)."""
    from gitml.errors import InvalidValue
    from gitml.store.content import add_remote

    parsed = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            raise InvalidValue(f"Invalid option {opt!r}: expected KEY=VALUE")
        parsed[key] = value
    add_remote(repo_from(ctx), name, url, parsed, make_default)
    if as_json:
        echo_json({"name": name, "url": url, "default": make_default, "options": parsed})
        return
    click.echo(f"added artifact remote {name} -> {url}")


@remote.command("list")
@json_option()
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """List artifact remotes: gitml's own (git config) and, in DVC repositories, DVC's (.dvc/config)."""
    from gitml.store.content import dvc_remotes, own_remotes, remote_config

    repo = repo_from(ctx)
    config = remote_config(repo)
    default = config.get("core", {}).get("remote")
    dvc = set(dvc_remotes(repo)) - own_remotes(repo)
    if as_json:
        echo_json({"default": default, "remotes": config.get("remote", {}), "dvc_remotes": sorted(dvc)})
        return
    echo_table(["NAME", "URL", "DEFAULT", "CONFIG"],
               [[n, c.get("url", ""), "*" if n == default else "", "dvc" if n in dvc else "git"]
                for n, c in sorted(config.get("remote", {}).items())])
