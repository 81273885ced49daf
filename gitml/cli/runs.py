"""``gitml runs ...`` and ``gitml reindex``."""

from __future__ import annotations

import click

from gitml.cli.output import echo_json, echo_table, fmt_num, fmt_time
from gitml.cli.repo import repo_from


@click.group()
def runs() -> None:
    """List, show, delete, restore and recover runs."""


@runs.command("list")
@click.option("-e", "--experiment", "experiments", multiple=True, help="Experiment name or id (repeatable; default: all).")
@click.option("-f", "--filter", "filter_string", default="", help="MLflow filter, e.g. \"metrics.rmse < 0.8 and params.alpha = '0.5'\".")
@click.option("-o", "--order-by", multiple=True, help="Order key, e.g. 'metrics.rmse DESC' (repeatable).")
@click.option("-n", "--max-results", type=int, default=100, show_default=True, help="At most this many runs.")
# tracking.entities.VIEWS's names (tests/test_cli.py checks): importing it here would slow `gitml --help`
@click.option("--view", type=click.Choice(["active", "deleted", "all"]), default="active", show_default=True, help="Which runs by lifecycle stage.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_runs(ctx: click.Context, experiments: tuple[str, ...], filter_string: str, order_by: tuple[str, ...],
              max_results: int, view: str, as_json: bool) -> None:
    """List runs, newest first, with their metrics."""
    from gitml.tracking import experiments as exps
    from gitml.tracking import runs as api
    from gitml.tracking.entities import VIEWS, ViewType

    repo = repo_from(ctx)
    ids = [_experiment_id(repo, e) for e in experiments] or None
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


def _experiment_id(repo: object, name_or_id: str) -> str:
    from gitml.errors import ExperimentNotFound
    from gitml.tracking import experiments as exps

    exp = exps.get_experiment_by_name(repo, name_or_id)  # type: ignore[arg-type]
    if exp is not None:
        return exp.experiment_id
    try:
        return exps.get_experiment(repo, name_or_id).experiment_id  # type: ignore[arg-type]
    except ExperimentNotFound:
        raise ExperimentNotFound(f"No experiment named or numbered {name_or_id!r}") from None


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_run(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: info, source, params, metrics and tags. RUN_ID may be a unique prefix."""
    from gitml.tracking import runs as api

    run = api.get_run(repo_from(ctx), run_id)
    if as_json:
        echo_json(run.to_dictionary())
        return
    info = run.info
    click.echo(f"run        {info.run_id}")
    click.echo(f"name       {info.run_name}")
    click.echo(f"experiment {info.experiment_id}")
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
@click.argument("run_id")
@click.pass_context
def run_commit(ctx: click.Context, run_id: str) -> None:
    """Print the run's commit, for plain git: ``git show $(gitml runs commit RUN_ID):run.json``.

    RUN_ID may be a unique prefix. A finished run's commit is an entry of the
    runs ledger (refs/gitml/ledger/<first hex digit>), a live run's its own
    ref (refs/gitml/runs/<id>).
    """
    from gitml.tracking import runs as api

    click.echo(api.get_run(repo_from(ctx), run_id).commit)


def _set_lifecycle(ctx: click.Context, run_ids: tuple[str, ...], stage: str, verb: str) -> None:
    from gitml.tracking import runs as api

    repo = repo_from(ctx)
    for run_id in run_ids:
        full = api.resolve_run_id(repo, run_id)
        api.set_lifecycle(repo, full, stage)
        click.echo(f"{verb} {full}")


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_context
def delete_runs(ctx: click.Context, run_ids: tuple[str, ...]) -> None:
    """Mark runs deleted (kept in git; `gitml runs restore` brings them back)."""
    _set_lifecycle(ctx, run_ids, "deleted", "deleted")


@runs.command("restore")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_context
def restore_runs(ctx: click.Context, run_ids: tuple[str, ...]) -> None:
    """Restore deleted runs."""
    _set_lifecycle(ctx, run_ids, "active", "restored")


@runs.command("recover")
@click.pass_context
def recover_runs(ctx: click.Context) -> None:
    """Commit the live logs of crashed or killed processes (their runs become KILLED)."""
    from gitml.tracking import runs as api
    from gitml.tracking import recovery

    repo = api.open_repo(ctx.find_root().obj.get("repo_path"))
    recovered = recovery.recover(repo)
    for run_id in recovered:
        click.echo(f"recovered {run_id}")
    waiting = recovery.pending_failed(repo)
    if not recovered and not waiting:
        click.echo("nothing to recover")
    if waiting:
        click.echo(f"{len(waiting)} live log{' waits' if len(waiting) == 1 else 's wait'} in "
                   f"{waiting[0].parent} (tried again by every recovery; see the warnings above)")


@click.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the query index (.git/gitml/index.sqlite) and the git notes from the run refs."""
    from gitml.tracking import runs as api

    count, noted = api.reindex(repo_from(ctx))
    click.echo(f"indexed {count} runs; notes on {noted} commits")
