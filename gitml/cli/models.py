"""``gitml models ...``: the model registry (versions and stages as git tags)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gitml.cli.complete import complete_model

from gitml.cli.repo import repo_from

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo


def _repo(ctx: click.Context) -> GitRepo:
    """The repository, opened lightly: registry reads need no run recovery (and no libgit2 when cached)."""
    from gitml.store.repo import GitRepo

    return GitRepo.discover(ctx.find_root().obj.get("repo_path"))
from gitml.cli.output import echo_json, echo_table, fmt_num, fmt_time

VERSION_HELP = "VERSION is a number (3 = the third registered), a semver (v1.2.0) or 'latest'."


@click.group()
def models() -> None:
    """Register model versions and move them through stages (git tags, GTO's grammar)."""


@models.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deprecated models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_models(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List registered models: latest version and who holds each stage."""
    from gitml.registry import listing

    found = listing.list_models(_repo(ctx), show_all)
    if as_json:
        echo_json(found)
        return
    echo_table(["MODEL", "LATEST", "VERSIONS", "STAGES"], [[
        m["name"] + (" (deprecated)" if m["deprecated"] else ""), m["latest"] or "-", m["versions"],
        ", ".join(f"{s}={v}" for s, v in m["stages"].items()) or "-",
    ] for m in found])


@models.command("show")
@click.argument("name", shell_complete=complete_model)
@click.option("--all", "show_all", is_flag=True, help="Include deregistered versions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, name: str, show_all: bool, as_json: bool) -> None:
    """Show a model's versions: stages, run, metrics of that run, description, tags and comments."""
    from gitml.registry import listing

    shown = listing.show(_repo(ctx), name, show_all)
    if as_json:
        echo_json(shown)
        return
    click.echo(f"Model {shown['name']}" + (" (deprecated)" if shown["deprecated"] else ""))
    if shown["description"]:
        click.echo(shown["description"])
    if shown["tags"]:
        click.echo("Tags: " + ", ".join(f"{k}={v}" for k, v in shown["tags"].items()))
    stages = ", ".join(f"{s}={v}" for s, v in shown["stages"].items())
    click.echo(f"Stages: {stages or 'none'}\n")
    versions = shown["versions"]
    echo_table(["#", "VERSION", "STAGES", "RUN", "REGISTERED", "BY", "METRICS", "DESCRIPTION"], [[
        v["number"], v["version"] + ("" if v["active"] else " (deregistered)"), ", ".join(v["stages"]) or "-",
        (v["run_id"] or v["commit"])[:12], fmt_time(v["registered_at"] * 1000), v["author"],
        ", ".join(f"{k}={fmt_num(x)}" for k, x in sorted(v["metrics"].items())[:4]) or "-",
        v["description"].splitlines()[0] if v["description"] else "",
    ] for v in versions])
    for v in versions:
        if v["tags"]:
            click.echo(f"\n{v['version']} tags: " + ", ".join(f"{k}={x}" for k, x in v["tags"].items()))
        for c in v["comments"]:
            when = fmt_time(c["time"] * 1000) if c["time"] else ""
            click.echo(f"\n{v['version']} comment by {c['author'] or 'unknown'} {when}:\n  " + c["text"].replace("\n", "\n  "))


@models.command("history")
@click.argument("name", required=False, shell_complete=complete_model)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Every registry event (register, stage moves, deregister, metadata changes, comments), newest first."""
    from gitml.registry import listing

    repo = _repo(ctx)
    rows = listing.history(repo, [listing.find_model(repo, name)] if name else None)
    if as_json:
        echo_json(rows)
        return
    echo_table(["TIME", "MODEL", "EVENT", "VERSION", "STAGE", "BY", "MESSAGE"], [[
        fmt_time(r["time"] * 1000), r["model"], r["event"], r["version"] or "-", r["stage"] or "-", r["author"],
        (r["message"] or "").splitlines()[0] if r["message"] else "",
    ] for r in rows])


@models.command("register")
@click.argument("name", shell_complete=complete_model)
@click.argument("model_uri")
@click.option("--version", "version", default=None, help="Explicit semver (v1.2.0); default: bump the highest.")
@click.option("--bump", type=click.Choice(["major", "minor", "patch"]), default="patch", show_default=True,
              help="Which part of the highest version to bump.")
@click.option("-m", "--description", default=None, help="Description, kept in the tag message.")
@click.pass_context
def register(ctx: click.Context, name: str, model_uri: str, version: str | None, bump: str,
             description: str | None) -> None:
    """Register the model at MODEL_URI (runs:/<run_id>/<path>) as a new version of NAME.

    Creates the annotated tag NAME@v<semver> on the run's commit.
    """
    from gitml import registry

    v = registry.register_model(repo_from(ctx), model_uri, name, version=version, bump=bump, description=description)
    click.echo(f"Registered {name} {v.version} (version {v.number}) from run {v.run_id}: tag {v.tag}")


def _stage_change(name: str) -> Any:
    """The arguments of a command that changes a version's stage: NAME VERSION STAGE [-m]."""
    def wrap(f: Any) -> Any:
        for decorator in reversed((
            models.command(name, epilog=VERSION_HELP), click.argument("name", shell_complete=complete_model), click.argument("version"),
            click.argument("stage"), click.option("-m", "--message", default=None, help="Why (kept in the tag message)."),
            click.pass_context,
        )):
            f = decorator(f)
        return f
    return wrap


@_stage_change("promote")
def promote(ctx: click.Context, name: str, version: str, stage: str, message: str | None) -> None:
    """Put VERSION of NAME in STAGE (e.g. staging, production); the previous holder leaves it.

    Writes NAME#<stage>#<n> (and NAME#<stage>!#<n> for the version that held it).
    """
    from gitml import registry

    v, written = registry.assign(repo_from(ctx), name, version, stage, message)
    if not written:
        click.echo(f"{name} {v.version} is in {stage} already; nothing written")
        return
    click.echo(f"{name} {v.version} is now in {stage}: tags {', '.join(written)}")


@_stage_change("unassign")
def unassign(ctx: click.Context, name: str, version: str, stage: str, message: str | None) -> None:
    """Take VERSION of NAME out of STAGE (NAME#<stage>!#<n>)."""
    from gitml import registry

    written = registry.unassign(repo_from(ctx), name, version, stage, message)
    click.echo(f"{name} {version} left {stage}: tag {written[0]}")


@models.command("deregister", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("version")
@click.option("-m", "--message", default=None, help="Why (kept in the tag message).")
@click.pass_context
def deregister(ctx: click.Context, name: str, version: str, message: str | None) -> None:
    """Deregister VERSION of NAME (NAME@v<semver>!): it no longer loads or holds stages."""
    from gitml import registry

    written = registry.deregister(repo_from(ctx), name, version, message)
    click.echo(f"Deregistered: tag {written[0]}")


@models.command("deprecate")
@click.argument("name", shell_complete=complete_model)
@click.option("-m", "--message", default=None, help="Why (kept in the tag message).")
@click.pass_context
def deprecate(ctx: click.Context, name: str, message: str | None) -> None:
    """Deprecate model NAME (NAME@deprecated); registering a new version revives it."""
    from gitml import registry

    written = registry.deprecate(repo_from(ctx), name, message)
    click.echo(f"Deprecated {name}: tag {written[0]}")


@models.command("comment", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("version")
@click.argument("text")
@click.pass_context
def comment(ctx: click.Context, name: str, version: str, text: str) -> None:
    """Comment on VERSION of NAME (kept in git notes refs/notes/gitml-registry)."""
    from gitml import registry

    registry.comment(repo_from(ctx), name, version, text)
    click.echo(f"Comment added to {name} {version}")


@models.command("create")
@click.argument("name", shell_complete=complete_model)
@click.option("-m", "--description", default=None, help="The model's description.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag of the model (repeatable).")
@click.pass_context
def create(ctx: click.Context, name: str, description: str | None, tags: tuple[str, ...]) -> None:
    """Create model NAME with no version yet (MLflow's create_registered_model).

    Its description and tags live in the registry's metadata log (git notes
    refs/notes/gitml-registry); gto sees the model once a version is registered.
    """
    from gitml import registry

    registry.create_model(repo_from(ctx), name, description, _pairs(tags))
    click.echo(f"Created model {name}")


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--tag")
        out[key] = value
    return out


@models.command("describe", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("text")
@click.option("--version", "version", default=None, help="Describe this version instead of the model.")
@click.pass_context
def describe(ctx: click.Context, name: str, text: str, version: str | None) -> None:
    """Set the description of model NAME (or of one version) to TEXT; '' clears it."""
    from gitml import registry

    repo = repo_from(ctx)
    if version is None:
        registry.update_model(repo, name, text or None)
        click.echo(f"Described {name}")
    else:
        v = registry.describe_version(repo, name, version, text or None)
        click.echo(f"Described {name} {v.version}")


@models.command("tag", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("key")
@click.argument("value", required=False)
@click.option("--version", "version", default=None, help="Tag this version instead of the model.")
@click.option("--delete", is_flag=True, help="Delete the tag KEY (give no VALUE).")
@click.pass_context
def tag(ctx: click.Context, name: str, key: str, value: str | None, version: str | None, delete: bool) -> None:
    """Set tag KEY to VALUE on model NAME (or on one version), or delete it with --delete.

    Registry tags are MLflow's key/value tags, kept in the registry's metadata log, not git tags.
    """
    from gitml import registry

    if delete == (value is not None):
        raise click.UsageError("give a VALUE to set the tag, or --delete without one")
    repo = repo_from(ctx)
    if version is None:
        registry.set_model_tag(repo, name, key, value)
    else:
        registry.set_version_tag(repo, name, version, key, value)
    what = f"{name} {version}" if version else name
    click.echo(f"Deleted tag {key} of {what}" if delete else f"Tagged {what}: {key}={value}")


@models.command("rename")
@click.argument("name", shell_complete=complete_model)
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, name: str, new_name: str) -> None:
    """Rename model NAME to NEW_NAME: versions, stages, tags, descriptions and comments follow.

    Each tag of NAME is written again under NEW_NAME (same commit, tagger, time and message,
    so gto shows the same history); NAME's versions are deregistered and NAME deprecated.
    """
    from gitml import registry

    registry.rename_model(repo_from(ctx), name, new_name)
    click.echo(f"Renamed {name} to {new_name}")


@models.command("copy", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("version")
@click.argument("dest")
@click.pass_context
def copy(ctx: click.Context, name: str, version: str, dest: str) -> None:
    """Copy VERSION of NAME as a new version of model DEST (MLflow's copy_model_version).

    The copy pins the same run commit and model path, with the description and tags.
    """
    from gitml import registry

    v = registry.copy_version(repo_from(ctx), name, version, dest)
    click.echo(f"Copied {name} {version} to {dest} {v.version} (version {v.number}): tag {v.tag}")
