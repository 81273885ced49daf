"""``gitml artifacts ...``."""

from __future__ import annotations

import click

from gitml.cli.output import echo_json, echo_table
from gitml.cli.repo import repo_from


@click.group()
def artifacts() -> None:
    """List and download the artifacts of runs."""


@artifacts.command("list")
@click.argument("run_id")
@click.argument("path", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, run_id: str, path: str, as_json: bool) -> None:
    """List the artifacts of RUN_ID directly under PATH."""
    from gitml.tracking import artifacts as api

    entries = api.list_artifacts(repo_from(ctx), run_id, path)
    if as_json:
        echo_json([vars(e) for e in entries])
        return
    echo_table(["PATH", "SIZE"], [[e.path + ("/" if e.is_dir else ""), e.file_size] for e in entries])


@artifacts.command("download")
@click.argument("run_id")
@click.argument("path", required=False, default="")
@click.option("-d", "--dest", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory to download into.")
@click.pass_context
def download_cmd(ctx: click.Context, run_id: str, path: str, dest: str) -> None:
    """Download an artifact file or directory of RUN_ID (every hash is checked)."""
    from gitml.tracking import artifacts as api

    click.echo(api.download_artifacts(repo_from(ctx), run_id, path, dest))
