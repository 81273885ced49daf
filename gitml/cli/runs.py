"""``gitml runs ...`` and ``gitml reindex``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from gitml.cli.complete import complete_experiment, complete_run_id
from gitml.cli.output import echo_json, echo_table, fmt_num, fmt_time
from gitml.cli.progress import Bars, json_option, quiet_option
from gitml.cli.repo import repo_from

if TYPE_CHECKING:  # pygit2 stays unloaded for `gitml --help`
    from gitml.tracking.entities import Run


@click.group()
def runs() -> None:
    """List, show, rename, tag, describe, delete, restore and recover runs."""


@runs.command("list")
@click.option("-e", "--experiment", "experiments", multiple=True, shell_complete=complete_experiment, help="Experiment name or id (repeatable; default: all).")
@click.option("-f", "--filter", "filter_string", default="", help="MLflow filter, e.g. \"metrics.rmse < 0.8 and params.alpha = '0.5'\".")
@click.option("-o", "--order-by", multiple=True, help="Order key, e.g. 'metrics.rmse DESC' (repeatable).")
@click.option("-n", "--max-results", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many runs.")
# tracking.entities.VIEWS's names (tests/test_cli.py checks): importing it here would slow `gitml --help`
@click.option("--view", type=click.Choice(["active", "deleted", "all"]), default="active", show_default=True, help="Which runs by lifecycle stage.")
@json_option("Print JSON instead of a table.")
@click.pass_context
def list_runs(ctx: click.Context, experiments: tuple[str, ...], filter_string: str, order_by: tuple[str, ...],
              max_results: int, view: str, as_json: bool) -> None:
    """List runs, newest first, with their metrics."""
    from gitml.tracking import experiments as exps
    from gitml.tracking import runs as api
    from gitml.tracking.entities import VIEWS, ViewType

    repo = repo_from(ctx)
    ids = [exps.find_experiment(repo, e).experiment_id for e in experiments] or None
    found = api.search_runs(repo, ids, filter_string, VIEWS[view], max_results, list(order_by) or None)
    if as_json:
        echo_json([r.to_dictionary() for r in found])
        return
    names = {e.experiment_id: e.name for e in exps.list_experiments(repo, ViewType.ALL)}
    rows = []
    for r in found:
        metrics = " ".join(f"{k}={fmt_num(v)}" for k, v in sorted(r.data.metrics.items())[:6])
        rows.append([r.info.run_id[:12], r.info.run_name, names.get(r.info.experiment_id, r.info.experiment_id),
                     r.info.status, fmt_time(r.info.start_time), metrics])
    echo_table(["RUN", "NAME", "EXPERIMENT", "STATUS", "STARTED", "METRICS"], rows)


@runs.command("show")
@click.argument("run_id", shell_complete=complete_run_id)
@json_option()
@click.pass_context
def show_run(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: info, experiment, source, params, metrics and tags. RUN_ID may be a unique prefix."""
    from gitml.errors import ExperimentNotFound
    from gitml.tracking import experiments as exps
    from gitml.tracking import runs as api

    repo = repo_from(ctx)
    run = api.get_run(repo, run_id)
    if as_json:
        echo_json(run.to_dictionary())
        return
    info = run.info
    try:
        experiment = f"{exps.get_experiment(repo, info.experiment_id).name} ({info.experiment_id})"
    except ExperimentNotFound:  # a teammate's run whose experiment was not pushed with it
        experiment = f"{info.experiment_id} (not in this repository)"
    click.echo(f"run        {info.run_id}")
    click.echo(f"name       {info.run_name}")
    click.echo(f"experiment {experiment}")
    click.echo(f"status     {info.status}" + ("  [deleted]" if info.lifecycle_stage == "deleted" else ""))
    click.echo(f"started    {fmt_time(info.start_time)}")
    click.echo(f"ended      {fmt_time(info.end_time)}")
    click.echo(f"user       {info.user_id}")
    src = run.source
    if src:
        dirty = " (uncommitted changes, snapshot " + str(src.get("commit"))[:10] + ")" if src.get("dirty") else ""
        click.echo(f"source     {str(src.get('head'))[:10]} on {src.get('branch') or 'detached HEAD'}{dirty}")
    if run.parent_run_id:
        click.echo(f"parent     {run.parent_run_id}")
    click.echo(f"commit     {run.commit}")
    metrics = {k: fmt_num(v) for k, v in run.data.metrics.items()}
    for title, items in (("params", run.data.params), ("metrics", metrics), ("tags", run.data.tags)):
        if items:
            click.echo(f"\n{title}:")
            width = max(len(k) for k in items)
            for k, v in sorted(items.items()):
                click.echo(f"  {k.ljust(width)}  {v}")


@runs.command("commit")
@click.argument("run_id", shell_complete=complete_run_id)
@json_option()
@click.pass_context
def run_commit(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Print the run's commit, for plain git: ``git show $(gitml runs commit RUN_ID):run.json``.

    RUN_ID may be a unique prefix. A finished run's commit is an entry of the
    runs ledger (refs/gitml/ledger/<first hex digit>), a live run's its own
    ref (refs/gitml/runs/<id>).
    """
    from gitml.tracking import runs as api

    run = api.get_run(repo_from(ctx), run_id)
    if as_json:
        echo_json({"run_id": run.info.run_id, "commit": run.commit})
        return
    click.echo(run.commit)


def _changed(run: Run, as_json: bool, message: str, **fields: object) -> None:
    """Report an edit of a run: ``message`` for people, or the run, its new commit and ``fields`` as JSON."""
    if as_json:
        echo_json({"run_id": run.info.run_id, "commit": run.commit, **fields})
    else:
        click.echo(message)


@runs.command("rename")
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("new_name")
@json_option("Print what changed as JSON.")
@click.pass_context
def rename_run(ctx: click.Context, run_id: str, new_name: str, as_json: bool) -> None:
    """Rename a run (its mlflow.runName tag). RUN_ID may be a unique prefix."""
    from gitml.tracking import runs as api

    run = api.rename_run(repo_from(ctx), run_id, new_name)
    _changed(run, as_json, f"renamed {run.info.run_id} to {run.info.run_name}", run_name=run.info.run_name)


@runs.command("tag")
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("key")
@click.argument("value")
@json_option("Print what changed as JSON.")
@click.pass_context
def tag_run(ctx: click.Context, run_id: str, key: str, value: str, as_json: bool) -> None:
    """Set tag KEY of a run to VALUE (as MlflowClient.set_tag). RUN_ID may be a unique prefix."""
    from gitml.tracking import runs as api

    run = api.set_run_tag(repo_from(ctx), run_id, key, value)
    _changed(run, as_json, f"tagged {run.info.run_id}: {key}={run.data.tags[key]}", tags={key: run.data.tags[key]})


@runs.command("untag")
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("key")
@json_option("Print what changed as JSON.")
@click.pass_context
def untag_run(ctx: click.Context, run_id: str, key: str, as_json: bool) -> None:
    """Delete tag KEY of a run (as MlflowClient.delete_tag). RUN_ID may be a unique prefix."""
    from gitml.tracking import runs as api

    run = api.delete_run_tag(repo_from(ctx), run_id, key)
    _changed(run, as_json, f"deleted tag {key} of {run.info.run_id}", deleted_tags=[key])


@runs.command("describe")
@click.argument("run_id", shell_complete=complete_run_id)
@click.argument("text")
@json_option("Print what changed as JSON.")
@click.pass_context
def describe_run(ctx: click.Context, run_id: str, text: str, as_json: bool) -> None:
    """Set a run's description (MLflow's mlflow.note.content tag) to TEXT; '-' reads it from stdin, '' clears it.

    RUN_ID may be a unique prefix.
    """
    from gitml.tracking import runs as api

    if text == "-":
        text = sys.stdin.read().rstrip("\n")
    run = api.describe_run(repo_from(ctx), run_id, text)
    description = run.data.tags.get(api.DESCRIPTION_TAG)
    _changed(run, as_json, f"{'described' if description else 'cleared the description of'} {run.info.run_id}",
             description=description)


def _set_lifecycle(ctx: click.Context, run_ids: tuple[str, ...], stage: str, verb: str, as_json: bool) -> None:
    from gitml.tracking import runs as api

    repo = repo_from(ctx)
    changed = []
    for run_id in run_ids:
        full = api.resolve_run_id(repo, run_id)
        api.set_lifecycle(repo, full, stage)
        changed.append({"run_id": full, "lifecycle_stage": stage})
        if not as_json:
            click.echo(f"{verb} {full}")
    if as_json:
        echo_json(changed)


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True, shell_complete=complete_run_id)
@json_option("Print what changed as JSON.")
@click.pass_context
def delete_runs(ctx: click.Context, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Mark runs deleted (kept in git; `gitml runs restore` brings them back)."""
    _set_lifecycle(ctx, run_ids, "deleted", "deleted", as_json)


@runs.command("restore")
@click.argument("run_ids", nargs=-1, required=True, shell_complete=complete_run_id)
@json_option("Print what changed as JSON.")
@click.pass_context
def restore_runs(ctx: click.Context, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Restore deleted runs."""
    _set_lifecycle(ctx, run_ids, "active", "restored", as_json)


@runs.command("recover")
@json_option("Print the recovered runs and the logs still waiting as JSON.")
@quiet_option
@click.pass_context
def recover_runs(ctx: click.Context, as_json: bool, quiet: bool) -> None:
    """Commit the live logs of crashed or killed processes (their runs become KILLED)."""
    from gitml.tracking import runs as api
    from gitml.tracking import recovery

    repo = api.open_repo(ctx.find_root().obj.get("repo_path"))
    with Bars(quiet) as bars:
        recovered = recovery.recover(repo, progress=bars)
    waiting = recovery.pending_failed(repo)
    if as_json:
        echo_json({"recovered": recovered, "waiting": [str(p) for p in waiting]})
        return
    for run_id in recovered:
        click.echo(f"recovered {run_id}")
    if not recovered and not waiting:
        click.echo("nothing to recover")
    if waiting:
        click.echo(f"{len(waiting)} live log{' waits' if len(waiting) == 1 else 's wait'} in "
                   f"{waiting[0].parent} (tried again by every recovery; see the warnings above)")


@click.command()
@json_option()
@quiet_option
@click.pass_context
def reindex(ctx: click.Context, as_json: bool, quiet: bool) -> None:
    """Rebuild the query index (.git/gitml/index.sqlite) and the git notes from the run refs."""
    from gitml.tracking import runs as api

    with Bars(quiet) as bars:
        count, noted = api.reindex(repo_from(ctx), progress=bars)
    if as_json:
        echo_json({"runs_indexed": count, "commits_noted": noted})
        return
    click.echo(f"indexed {count} runs; notes on {noted} commits")
