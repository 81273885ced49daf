"""``gitml gc``."""

from __future__ import annotations

from typing import Any

import click

from gitml.cli.output import echo_json
from gitml.cli.progress import Bars, json_option, quiet_option
from gitml.cli.repo import repo_from


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@click.command()
@click.option("-f", "--force", is_flag=True, help="Delete (without it, only report what would be deleted).")
@click.option("-c", "--cloud", is_flag=True, help="Also collect the default artifact remote.")
@click.option("-r", "--remote", default=None, metavar="NAME", help="Also collect this artifact remote.")
@click.option("--git-remote", "git_remotes", multiple=True, metavar="NAME",
              help="With -c/-r: the git remotes whose runs count as references (repeatable; default: all).")
@click.option("--keep-recent", default=None, metavar="DURATION",
              help="Keep objects stored or logged within this time (90s, 30m, 1h, 2d; default: "
                   "gitml.gckeeprecent or 1h).")
@click.option("--no-pack", is_flag=True, help="Do not pack git's loose objects and refs.")
@click.option("-v", "--verbose", is_flag=True, help="List every object (md5 and path).")
@json_option("Print a JSON report.")
@quiet_option
@click.pass_context
def gc(ctx: click.Context, force: bool, cloud: bool, remote: str | None, git_remotes: tuple[str, ...],
       keep_recent: str | None, no_pack: bool, verbose: bool, as_json: bool, quiet: bool) -> None:
    """Delete artifact objects no run references (a dry run unless --force), and pack git's loose objects."""
    from gitml.errors import InvalidValue
    from gitml.settings import Duration
    from gitml.tracking import gc as api

    keep = None
    if keep_recent is not None:
        try:
            keep = Duration(keep_recent)
        except ValueError:
            keep = None
        if keep is None or not keep >= 0 or keep == float("inf"):
            raise InvalidValue(f"Invalid --keep-recent {keep_recent!r}: expected a duration such as 3600, 90s, 30m, "
                               "1h or 2d")
    with Bars(quiet) as bars:
        report = api.collect(repo_from(ctx), force=force, remote=remote, cloud=cloud, keep_recent=keep,
                             git_remotes=list(git_remotes) or None, pack_git=not no_pack, progress=bars)
    if as_json:
        echo_json(api.as_dict(report))
    else:
        _print(report, verbose)
    if report.refused:
        ctx.exit(1)


def _print(report: Any, verbose: bool) -> None:
    would = "would remove" if report.dry_run else "removed"
    for store in report.stores:
        name = "cache" if store.store == "cache" else f"remote {store.store}"
        click.echo(f"{name} ({store.location}): {store.objects} objects, {_size(store.bytes)}; "
                   f"{store.referenced} referenced, {store.kept_recent} recent kept")
        click.echo(f"  {would} {len(store.removed)} objects, {_size(store.removed_bytes)}"
                   + (f"; {len(store.temp_files)} leftover temporary files" if store.temp_files else ""))
        if verbose:
            for obj in store.removed:
                click.echo(f"    {obj['md5']}  {obj['size']:>10}  {obj['path']}")
            for tmp in store.temp_files:
                click.echo(f"    {'(temporary)':32}  {tmp['size']:>10}  {tmp['path']}")
        if store.adopted:
            click.echo(f"  {'would copy' if report.dry_run else 'copied'} {store.adopted} objects from DVC's cache "
                       "into gitml's")
        if store.missing:
            click.echo(f"  {store.missing} referenced objects are not here (not pulled or not pushed)")
    git = report.git
    if git:
        line = f"git: {git['loose_objects']} loose objects, {git['packs']} packs, {git['loose_refs']} loose refs"
        if "after" in git:
            after = git["after"]
            line += f" -> {after['loose_objects']} loose objects, {after['packs']} packs, {after['loose_refs']} loose refs"
        click.echo(line)
    if report.dry_run and not report.refused and any(s.removed or s.temp_files for s in report.stores):
        click.echo("dry run: nothing was deleted (use --force)")
    for bad in report.malformed:
        click.echo(f"warning: commit {bad.commit[:12]}: artifacts.json is not gitml's ({bad.reason}); "
                   f"kept every hash it mentions", err=True)
    for text in report.warnings:
        click.echo(f"warning: {text}", err=True)
    for why in report.refused:
        click.echo(f"refused: {why}", err=True)
    if report.refused:
        click.echo("Error: gitml gc cannot tell what is referenced, so it deleted nothing", err=True)
