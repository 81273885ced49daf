"""``gitml experiments ...``."""

from __future__ import annotations

import click

from gitml.cli.output import echo_json, echo_table, fmt_time
from gitml.cli.repo import repo_from


@click.group()
def experiments() -> None:
    """List and create experiments."""


@experiments.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deleted experiments.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_experiments(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List experiments."""
    from gitml.tracking import experiments as api
    from gitml.tracking.entities import ViewType

    exps = api.list_experiments(repo_from(ctx), ViewType.ALL if show_all else ViewType.ACTIVE_ONLY)
    if as_json:
        echo_json([vars(e) for e in exps])
        return
    echo_table(["ID", "NAME", "STAGE", "CREATED"],
               [[e.experiment_id, e.name, e.lifecycle_stage, fmt_time(e.creation_time) if e.creation_time else ""] for e in exps])


@experiments.command("create")
@click.argument("name")
@click.pass_context
def create_experiment(ctx: click.Context, name: str) -> None:
    """Create an experiment and print its id."""
    from gitml.tracking import experiments as api

    click.echo(api.create_experiment(repo_from(ctx), name))
