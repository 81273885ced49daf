"""Shell completion: ``gitml completion bash|zsh|fish`` and the completers of run ids, experiments and models.

Click completes commands and options by itself; these add the repository's
own names. A completer never fails the shell: any error completes nothing.
"""

from __future__ import annotations

import os
from typing import Any

import click

SHELLS = ("bash", "zsh", "fish")
LIMIT = 50  # candidates offered at most


def _repo(ctx: click.Context) -> Any:
    from gitml.tracking import runs

    root = ctx.find_root()
    path = (root.params or {}).get("repo") or os.environ.get("GITML_REPO") or None
    return runs.open_repo(path)


def complete_run_id(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Run ids starting with what was typed (any unique prefix works on the command line)."""
    try:
        from gitml.tracking import runs

        return runs.sync_index(_repo(ctx)).run_ids_with_prefix(incomplete.lower())[:LIMIT]
    except Exception:  # noqa: BLE001 - completion must never break the shell
        return []


def complete_model(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Registered model names starting with what was typed."""
    try:
        from gitml import registry

        return sorted(n for n in registry.load(_repo(ctx)) if n.startswith(incomplete))[:LIMIT]
    except Exception:  # noqa: BLE001
        return []


def complete_version(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """The versions of the model named on the line (semvers, newest first, and 'latest') starting with
    what was typed; a number typed completes to itself among the registration numbers."""
    try:
        from gitml import registry

        name = ctx.params.get("name") or ""
        model = registry.load(_repo(ctx), name).get(name)
        if model is None:
            return []
        active = [v for v in reversed(model.versions) if v.active]
        if incomplete[:1].isdigit():
            return [str(v.number) for v in active if str(v.number).startswith(incomplete)][:LIMIT]
        return [c for c in [v.version for v in active] + ["latest"] if c.startswith(incomplete)][:LIMIT]
    except Exception:  # noqa: BLE001
        return []


def complete_experiment(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Experiment names starting with what was typed."""
    try:
        from gitml.tracking.entities import ViewType
        from gitml.tracking.experiments import list_experiments

        names = (e.name for e in list_experiments(_repo(ctx), ViewType.ALL))
        return sorted(n for n in names if n.startswith(incomplete))[:LIMIT]
    except Exception:  # noqa: BLE001
        return []


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; load it from your shell's startup file.

    \b
    bash:  echo 'eval "$(gitml completion bash)"' >> ~/.bashrc
    zsh:   echo 'eval "$(gitml completion zsh)"' >> ~/.zshrc
    fish:  gitml completion fish > ~/.config/fish/completions/gitml.fish

    Completes commands, options, run ids (any prefix), experiment and model names, and a
    model's versions.
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command  # the gitml group (not imported: no cycle)
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(root, {}, "gitml", "_GITML_COMPLETE").source())
