"""``gitml experiments ...``."""

from __future__ import annotations

import click

from gitml.cli.complete import complete_experiment
from gitml.cli.output import echo_json, echo_table, fmt_time
from gitml.cli.progress import json_option
from gitml.cli.repo import repo_from


@click.group()
def experiments() -> None:
    """List, create, rename, delete and restore experiments."""


@experiments.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deleted experiments.")
@json_option()
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
@json_option("Print the new experiment as JSON.")
@click.pass_context
def create_experiment(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create an experiment and print its id."""
    from gitml.tracking import experiments as api

    experiment_id = api.create_experiment(repo_from(ctx), name)
    if as_json:
        echo_json({"experiment_id": experiment_id, "name": name})
        return
    click.echo(experiment_id)


@experiments.command("rename")
@click.argument("experiment", shell_complete=complete_experiment)
@click.argument("new_name")
@json_option("Print what changed as JSON.")
@click.pass_context
def rename_experiment(ctx: click.Context, experiment: str, new_name: str, as_json: bool) -> None:
    """Rename EXPERIMENT (a name or an id); its id and runs stay."""
    from gitml.tracking import experiments as api

    repo = repo_from(ctx)
    old = api.find_experiment(repo, experiment)
    exp = api.rename_experiment(repo, old.experiment_id, new_name)
    if as_json:
        echo_json({"experiment_id": exp.experiment_id, "name": exp.name, "old_name": old.name})
        return
    click.echo(f"renamed experiment {exp.experiment_id}: {old.name} -> {exp.name}")


def _set_lifecycle(ctx: click.Context, experiment: str, stage: str, as_json: bool) -> None:
    from gitml.tracking import experiments as api
    from gitml.tracking import runs

    repo = repo_from(ctx)
    exp = api.find_experiment(repo, experiment)
    changed = runs.set_experiment_lifecycle(repo, exp.experiment_id, stage)
    if as_json:
        echo_json({"experiment_id": exp.experiment_id, "name": exp.name, "lifecycle_stage": stage,
                   "runs_changed": changed})
        return
    verb = "deleted" if stage == "deleted" else "restored"
    click.echo(f"{verb} experiment {exp.name} ({exp.experiment_id}) and {changed} run{'' if changed == 1 else 's'}")


@experiments.command("delete")
@click.argument("experiment", shell_complete=complete_experiment)
@json_option("Print what changed as JSON.")
@click.pass_context
def delete_experiment(ctx: click.Context, experiment: str, as_json: bool) -> None:
    """Mark EXPERIMENT (a name or an id) and its runs deleted, as MLflow does (kept in git; restore undoes it)."""
    _set_lifecycle(ctx, experiment, "deleted", as_json)


@experiments.command("restore")
@click.argument("experiment", shell_complete=complete_experiment)
@json_option("Print what changed as JSON.")
@click.pass_context
def restore_experiment(ctx: click.Context, experiment: str, as_json: bool) -> None:
    """Restore a deleted EXPERIMENT (a name or an id) and its runs."""
    _set_lifecycle(ctx, experiment, "active", as_json)
