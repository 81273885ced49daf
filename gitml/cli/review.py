"""``gitml diff`` and ``gitml report``: params and metrics between commits, branches, tags or runs."""

from __future__ import annotations

import click

from gitml.cli.progress import json_option

PICK_HELP = ("Which run stands for a commit with several: latest, best:<metric> (lowest) or "
             "best:<metric>:max (default: git config gitml.diff.pick, else latest).")


@click.command("diff")
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table",
              show_default=True, help="Output format (json: DVC's {key: {old, new, diff}}).")
@click.option("--json", "fmt", flag_value="json", help="Same as --format json.")
@click.option("--all", "show_all", is_flag=True, help="Include unchanged params and metrics.")
@click.option("--precision", type=click.IntRange(1, 17), default=5, show_default=True,
              help="Significant digits of numbers.")
@click.option("--pick", default=None, help=PICK_HELP)
@click.option("--better", "better", multiple=True, metavar="METRIC:lower|higher",
              help="Which way is better for a metric, to judge its change (repeatable; default: git config "
                   "gitml-metric.<metric>.better, else known names: loss/error/rmse/mae lower, "
                   "accuracy/auc/f1/r2 higher).")
@click.pass_context
def diff(ctx: click.Context, a: str | None, b: str | None, fmt: str, show_all: bool, precision: int,
         pick: str | None, better: tuple[str, ...]) -> None:
    """Params and metrics of A vs B, with absolute and relative change.

    A and B are commits, branches, tags or run ids. Default: HEAD's run vs
    the newest run (e.g. one just made from the work tree), like
    `dvc metrics diff`; A alone: A vs the newest run.
    """
    from gitml.cli.repo import repo_from
    from gitml.review import diff as review
    from gitml.review.direction import parse_overrides

    repo = repo_from(ctx)
    new = review.resolve_side(repo, b, pick) if b else review.latest_run(repo)
    other = new.run.info.run_id if new.run is not None and not b else None
    old = review.resolve_side(repo, a or "HEAD", pick, exclude=other)
    ways = review.metric_directions(repo, old, new, parse_overrides(better))
    click.echo(review.render(review.compare(old, new, show_all, ways), old, new, fmt, precision))


@click.command("report")
@click.argument("range_spec", metavar="BASE..HEAD")
@click.option("-o", "--output", "out_dir", default="gitml-report", show_default=True, type=click.Path(file_okay=False),
              help="Directory for report.md and the plots.")
@click.option("--pick", default=None, help=PICK_HELP)
@click.option("--run-url", default=None, help="Link template for runs, e.g. 'https://ml.example.com/runs/{run_id}'.")
@click.option("--image-prefix", default="", help="Prefix for image links (where CI publishes the PNGs).")
@click.option("--max-plots", type=click.IntRange(0, 100), default=8, show_default=True,
              help="Metric-history plots to draw (changed metrics first).")
@click.option("--precision", type=click.IntRange(1, 17), default=5, show_default=True,
              help="Significant digits of numbers.")
@json_option("Print the files written as JSON.")
@click.pass_context
def report(ctx: click.Context, range_spec: str, out_dir: str, pick: str | None, run_url: str | None,
           image_prefix: str, max_plots: int, precision: int, as_json: bool) -> None:
    """Write a pull-request comment (markdown + PNG plots) comparing BASE and HEAD."""
    from gitml.cli.repo import repo_from
    from gitml.review.report import make_report

    path = make_report(repo_from(ctx), range_spec, out_dir, pick, run_url, image_prefix, precision, max_plots)
    if as_json:
        from gitml.cli.output import echo_json

        echo_json({"report": str(path), "plots": sorted(str(p) for p in path.parent.glob("*.png"))})
        return
    click.echo(str(path))
