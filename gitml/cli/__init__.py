"""The ``gitml`` command. Commands are thin: one domain call plus formatting.

Heavy modules (pygit2, pandas) are imported inside commands so that
``gitml --help`` and ``gitml --version`` stay fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from gitml.version import VERSION as __version__


class GitmlGroup(click.Group):
    """Maps gitml errors to ``Error: ...`` and their exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        from gitml.cli.output import safe_streams
        from gitml.errors import GitmlError

        before = safe_streams()
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return result
        except BrokenPipeError:
            # `gitml runs list | head`: the reader is gone; stop quietly, as git does.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except GitmlError as e:
            if ctx.meta.get("gitml.traceback"):
                raise
            click.echo(f"Error: {e.message}", err=True)
            sys.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            if ctx.meta.get("gitml.traceback"):
                raise
            click.echo(f"Error: unexpected {type(e).__name__}: {e} (rerun with --traceback for details)", err=True)
            sys.exit(1)
        finally:
            sys.stdout, sys.stderr = before


@click.group(cls=GitmlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gitml", message="%(prog)s %(version)s")
@click.option(
    "-C",
    "--repo",
    type=click.Path(file_okay=False),
    default=None,
    # settings.SETTINGS["repo"].env, spelled out (tests/test_cli.py checks): importing gitml.settings
    # here would load dataclasses into `gitml --help`
    envvar="GITML_REPO",
    help="Run as if gitml was started in this repository (default: the one around the cwd).",
)
@click.option("--traceback", is_flag=True, help="Show the full Python traceback on errors.")
@click.pass_context
def main(ctx: click.Context, repo: str | None, traceback: bool) -> None:
    """gitml: experiment tracking, models and registry stored in your git repository."""
    ctx.ensure_object(dict)
    ctx.obj["repo_path"] = repo
    ctx.meta["gitml.traceback"] = traceback


def _register() -> None:
    from gitml.cli import artifacts, complete, experiments, gc, hooks, log, models, projects, review, runs, serving, sync, ui

    main.add_command(runs.runs)
    main.add_command(complete.completion)
    main.add_command(artifacts.artifacts)
    main.add_command(experiments.experiments)
    main.add_command(models.models)
    main.add_command(log.log)
    main.add_command(runs.reindex)
    main.add_command(projects.run)
    main.add_command(review.diff)
    main.add_command(review.report)
    main.add_command(projects.rerun)
    main.add_command(serving.serve)
    main.add_command(serving.predict)
    main.add_command(serving.build_docker)
    main.add_command(sync.push)
    main.add_command(sync.pull)
    main.add_command(sync.remote)
    main.add_command(gc.gc)
    main.add_command(hooks.hooks)
    main.add_command(ui.ui)


_register()
