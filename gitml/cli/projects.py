"""``gitml run`` and ``gitml rerun``: MLproject entry points from a repository snapshot."""

from __future__ import annotations

from typing import Any

import click

from gitml.cli.complete import complete_experiment, complete_run_id
from gitml.cli.output import echo_json
from gitml.cli.progress import json_option
from gitml.cli.repo import repo_from


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: write key=value", param_hint="-P")
        out[key.strip()] = value
    return out


@click.command("run")
@click.argument("uri", default=".")
@click.option("-e", "--entry-point", default="main", show_default=True, help="Entry point (or a .py/.sh file).")
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@click.option("-v", "--version", default=None,
              help="Commit, tag or branch to run (default: the work tree as it is now, or the URL's HEAD).")
@click.option("--experiment", default=None, shell_complete=complete_experiment,
              help="Experiment name (created if missing).")
@click.option("--env-manager", type=click.Choice(["local", "virtualenv", "uv"]), default=None,
              help="Where to run: this Python (local), or a cached venv built from python_env.yaml "
                   "(default: virtualenv if the project declares a python_env, else local).")
@json_option("Print the run made (id, commit, exit code) as JSON on stdout, after the project's own output.")
@click.pass_context
def run(ctx: click.Context, uri: str, entry_point: str, params: tuple[str, ...], version: str | None,
        experiment: str | None, env_manager: str | None, as_json: bool) -> None:
    """Run an entry point of the project at URI as a gitml run.

    URI is '.', a path, or a git URL, with an optional #subdir. The project is
    checked out in a temporary worktree at the revision: your work tree is
    never touched. Exits with the entry point's exit code.
    """
    from gitml.projects.run import run_project

    result = run_project(repo_from(ctx), uri, entry_point, _params(params), version, experiment, env_manager)
    _finished(result, as_json, f"gitml run {result.run_id}: exit code {result.exit_code}")
    ctx.exit(result.exit_code)


def _finished(result: Any, as_json: bool, message: str, **fields: str) -> None:
    if as_json:
        echo_json({"run_id": result.run_id, "commit": result.commit, "exit_code": result.exit_code, **fields})
    else:
        click.echo(message, err=True)


@click.command("rerun")
@click.argument("run_id", shell_complete=complete_run_id)
@click.option("-P", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a parameter (repeatable).")
@click.option("--experiment", default=None, shell_complete=complete_experiment,
              help="Experiment name (default: the old run's).")
@click.option("--env-manager", type=click.Choice(["local", "virtualenv", "uv"]), default=None,
              help="Override the old run's env manager.")
@json_option("Print the new run (id, commit, exit code) as JSON on stdout, after the project's own output.")
@click.pass_context
def rerun(ctx: click.Context, run_id: str, params: tuple[str, ...], experiment: str | None,
          env_manager: str | None, as_json: bool) -> None:
    """Run RUN_ID again from its own source commit (uncommitted changes included), linked to it."""
    from gitml.projects.run import rerun as again

    result = again(repo_from(ctx), run_id, _params(params), env_manager, experiment)
    _finished(result, as_json, f"gitml run {result.run_id} (rerun of {run_id}): exit code {result.exit_code}",
              rerun_of=run_id)
    ctx.exit(result.exit_code)
