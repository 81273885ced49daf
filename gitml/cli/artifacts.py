"""``gitml artifacts ...``."""

from __future__ import annotations

import click

from gitml.cli.complete import complete_run_id
from gitml.cli.output import echo_json, echo_table
from gitml.cli.progress import Bars, json_option, quiet_option
from gitml.cli.repo import repo_from


@click.group()
def artifacts() -> None:
    """Log, list and download the artifacts of runs."""


@artifacts.command("list")
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("path", required=False, default="")
@json_option()
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
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("path", required=False, default="")
@click.option("-d", "--dest", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory to download into.")
@json_option("Print where the files went as JSON.")
@quiet_option
@click.pass_context
def download_cmd(ctx: click.Context, run_id: str, path: str, dest: str, as_json: bool, quiet: bool) -> None:
    """Download an artifact file or directory of RUN_ID (every hash is checked); print its local path."""
    from gitml.tracking import artifacts as api
    from gitml.tracking import runs

    repo = repo_from(ctx)
    run_id = runs.get_run(repo, run_id).info.run_id  # the full id, for --json
    with Bars(quiet) as bars:
        local = api.download_artifacts(repo, run_id, path, dest, progress=bars)
    if as_json:
        echo_json({"run_id": run_id, "artifact_path": path, "local_path": local})
        return
    click.echo(local)


@artifacts.command("log")
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("path", type=click.Path())
@click.option("-a", "--artifact-path", default=None, metavar="DIR",
              help="Directory in the run's artifacts to store under (default: the top).")
@json_option("Print what was stored as JSON.")
@quiet_option
@click.pass_context
def log_cmd(ctx: click.Context, run_id: str, path: str, artifact_path: str | None, as_json: bool, quiet: bool) -> None:
    """Store the file or directory PATH as artifacts of RUN_ID (as MlflowClient.log_artifact(s)).

    A file is stored as DIR/<its name>; a directory's files keep their paths
    below it, under DIR. RUN_ID may be a unique prefix.
    """
    from gitml.tracking import artifacts as api

    with Bars(quiet) as bars:
        run, stored = api.log_to_run(repo_from(ctx), run_id, path, artifact_path, progress=bars)
    if as_json:
        echo_json({"run_id": run.info.run_id, "commit": run.commit, "artifacts": stored})
        return
    echo_table(["PATH", "SIZE", "MD5"], [[p, e["size"], e["md5"]] for p, e in stored.items()])
    click.echo(f"{len(stored)} file{'' if len(stored) == 1 else 's'} stored in run {run.info.run_id}")
