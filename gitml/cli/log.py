"""``gitml log``: commits with the runs made from them, like ``git log``."""

from __future__ import annotations

import click

from gitml.cli.output import echo_json, fmt_num
from gitml.cli.progress import json_option
from gitml.cli.repo import repo_from


@click.command()
@click.argument("rev", default="HEAD")
@click.option("-n", "--max-count", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show at most this many commits.")
@click.option("--runs-only", is_flag=True, help="Skip commits that have no runs.")
@click.option("--graph", is_flag=True, help="Draw the commit graph (as git log --graph), each commit with its runs' key metrics.")
@json_option()
@click.pass_context
def log(ctx: click.Context, rev: str, max_count: int, runs_only: bool, graph: bool, as_json: bool) -> None:
    """Show commits reachable from REV with the runs started from each."""
    from gitml.tracking import history

    if graph and not as_json:
        _graph(ctx, rev, max_count)
        return
    entries = history.commit_log(repo_from(ctx), rev, max_count, runs_only)
    if as_json:
        echo_json([{"commit": vars(c), "runs": [r.to_dictionary() for r in rs]} for c, rs in entries])
        return
    for commit, runs in entries:
        subject = commit.message.splitlines()[0] if commit.message else ""
        click.echo(click.style(f"commit {commit.oid[:10]}", fg="yellow") + f" {subject}")
        for r in runs:
            metrics = " ".join(f"{k}={fmt_num(v)}" for k, v in sorted(r.data.metrics.items())[:6])
            dirty = " (dirty)" if r.source.get("dirty") else ""
            click.echo(f"    run {r.info.run_id[:12]} {r.info.status:<8} {r.info.run_name}{dirty}  {metrics}")


def _graph(ctx: click.Context, rev: str, max_count: int) -> None:
    from gitml.store import gitlog
    from gitml.tracking import runs as runs_api
    from gitml.tracking.history import RevisionNotFound

    repo = repo_from(ctx)
    try:
        lines = gitlog.graph(repo, rev, max_count)
    except ValueError as e:
        raise RevisionNotFound(str(e)) from None
    by_commit = runs_api.runs_of_commits(repo, [oid for _, oid, _ in lines if oid])
    for prefix, oid, subject in lines:
        if oid is None:
            click.echo(prefix)
            continue
        found = by_commit.get(oid, [])
        line = prefix + click.style(oid[:10], fg="yellow") + f" {subject}"
        if found:
            latest = max(found, key=lambda r: r.info.start_time)
            metrics = " ".join(f"{k}={fmt_num(v)}" for k, v in sorted(latest.data.metrics.items())[:4])
            more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
            line += click.style(f"  [{latest.info.run_id[:8]} {metrics}{more}]", fg="green")
        click.echo(line)
