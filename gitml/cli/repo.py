"""The repository a command works on (the root group's ``--repo``, else the one around the working directory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pygit2 stays unloaded for `gitml --help`
    from gitml.store.repo import GitRepo


def repo_from(ctx: click.Context) -> GitRepo:
    """The repository the command works on, with dead runs recovered first."""
    from gitml.tracking import recovery, runs

    repo = runs.open_repo(ctx.find_root().obj.get("repo_path"))
    recovery.recover(repo)
    return repo
