"""``gitml models ...``: the model registry (versions and stages as git tags)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gitml.cli.complete import complete_model, complete_version
from gitml.cli.output import echo_json, echo_table, fmt_num, fmt_time
from gitml.cli.progress import json_option
from gitml.cli.repo import repo_from

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo


def _repo(ctx: click.Context) -> GitRepo:
    """The repository, opened lightly: registry reads need no run recovery (and no libgit2 when cached)."""
    from gitml.store.repo import GitRepo

    return GitRepo.discover(ctx.find_root().obj.get("repo_path"))


def _version(v: Any) -> dict[str, Any]:
    """A registered version as ``--json`` prints it (the fields ``models show --json`` also has)."""
    return {"name": v.model, "version": v.version, "number": v.number, "run_id": v.run_id, "commit": v.commit,
            "path": v.path, "tag": v.tag, "stages": list(v.stages)}


def _done(as_json: bool, message: str, **fields: Any) -> None:
    """Report a registry change: ``message`` for people, or ``fields`` as JSON."""
    if as_json:
        echo_json(fields)
    else:
        click.echo(message)

VERSION_HELP = "VERSION is a number (3 = the third registered), a semver (v1.2.0) or 'latest'."


@click.group()
def models() -> None:
    """Register model versions and move them through stages (git tags, GTO's grammar)."""


@models.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deprecated models.")
@json_option()
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
@json_option()
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
@json_option()
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
@json_option("Print the new version as JSON.")
@click.pass_context
def register(ctx: click.Context, name: str, model_uri: str, version: str | None, bump: str,
             description: str | None, as_json: bool) -> None:
    """Register the model at MODEL_URI (runs:/<run_id>/<path>) as a new version of NAME.

    Creates the annotated tag NAME@v<semver> on the run's commit.
    """
    from gitml import registry

    v = registry.register_model(repo_from(ctx), model_uri, name, version=version, bump=bump, description=description)
    _done(as_json, f"Registered {name} {v.version} (version {v.number}) from run {v.run_id}: tag {v.tag}", **_version(v))


def _stage_change(name: str) -> Any:
    """The arguments of a command that changes a version's stage: NAME VERSION STAGE [-m]."""
    def wrap(f: Any) -> Any:
        for decorator in reversed((
            models.command(name, epilog=VERSION_HELP), click.argument("name", shell_complete=complete_model),
            click.argument("version", shell_complete=complete_version), click.argument("stage"),
            click.option("-m", "--message", default=None, help="Why (kept in the tag message)."),
            json_option("Print the tags written as JSON."), click.pass_context,
        )):
            f = decorator(f)
        return f
    return wrap


@_stage_change("promote")
def promote(ctx: click.Context, name: str, version: str, stage: str, message: str | None, as_json: bool) -> None:
    """Put VERSION of NAME in STAGE (e.g. staging, production); the previous holder leaves it.

    Writes NAME#<stage>#<n> (and NAME#<stage>!#<n> for the version that held it).
    """
    from gitml import registry

    v, written = registry.assign(repo_from(ctx), name, version, stage, message)
    message = (f"{name} {v.version} is now in {stage}: tags {', '.join(written)}" if written
               else f"{name} {v.version} is in {stage} already; nothing written")
    _done(as_json, message, name=name, version=v.version, number=v.number, stage=stage, tags_written=written)


@_stage_change("unassign")
def unassign(ctx: click.Context, name: str, version: str, stage: str, message: str | None, as_json: bool) -> None:
    """Take VERSION of NAME out of STAGE (NAME#<stage>!#<n>)."""
    from gitml import registry

    written = registry.unassign(repo_from(ctx), name, version, stage, message)
    _done(as_json, f"{name} {version} left {stage}: tag {written[0]}", name=name, version=version, stage=stage,
          tags_written=written)


@models.command("deregister", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("version", shell_complete=complete_version)
@click.option("-m", "--message", default=None, help="Why (kept in the tag message).")
@json_option("Print the tags written as JSON.")
@click.pass_context
def deregister(ctx: click.Context, name: str, version: str, message: str | None, as_json: bool) -> None:
    """Deregister VERSION of NAME (NAME@v<semver>!): it no longer loads or holds stages."""
    from gitml import registry

    written = registry.deregister(repo_from(ctx), name, version, message)
    _done(as_json, f"Deregistered: tag {written[0]}", name=name, version=version, tags_written=written)


@models.command("deprecate")
@click.argument("name", shell_complete=complete_model)
@click.option("-m", "--message", default=None, help="Why (kept in the tag message).")
@json_option("Print the tags written as JSON.")
@click.pass_context
def deprecate(ctx: click.Context, name: str, message: str | None, as_json: bool) -> None:
    """Deprecate model NAME (NAME@deprecated); registering a new version revives it."""
    from gitml import registry

    written = registry.deprecate(repo_from(ctx), name, message)
    _done(as_json, f"Deprecated {name}: tag {written[0]}", name=name, tags_written=written)


@models.command("comment", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("version", shell_complete=complete_version)
@click.argument("text")
@json_option("Print the comment as JSON.")
@click.pass_context
def comment(ctx: click.Context, name: str, version: str, text: str, as_json: bool) -> None:
    """Comment on VERSION of NAME (kept in git notes refs/notes/gitml-registry)."""
    from gitml import registry

    c = registry.comment(repo_from(ctx), name, version, text)
    _done(as_json, f"Comment added to {name} {version}", name=name, version=version, time=c.time, author=c.author,
          text=c.text)


@models.command("create")
@click.argument("name", shell_complete=complete_model)
@click.option("-m", "--description", default=None, help="The model's description.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag of the model (repeatable).")
@json_option("Print the model as JSON.")
@click.pass_context
def create(ctx: click.Context, name: str, description: str | None, tags: tuple[str, ...], as_json: bool) -> None:
    """Create model NAME with no version yet (MLflow's create_registered_model).

    Its description and tags live in the registry's metadata log (git notes
    refs/notes/gitml-registry); gto sees the model once a version is registered.
    """
    from gitml import registry

    pairs = _pairs(tags)
    registry.create_model(repo_from(ctx), name, description, pairs)
    _done(as_json, f"Created model {name}", name=name, description=description, tags=pairs)


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
@json_option("Print what changed as JSON.")
@click.pass_context
def describe(ctx: click.Context, name: str, text: str, version: str | None, as_json: bool) -> None:
    """Set the description of model NAME (or of one version) to TEXT; '' clears it."""
    from gitml import registry

    repo = repo_from(ctx)
    if version is None:
        registry.update_model(repo, name, text or None)
        _done(as_json, f"Described {name}", name=name, description=text or None)
    else:
        v = registry.describe_version(repo, name, version, text or None)
        _done(as_json, f"Described {name} {v.version}", name=name, version=v.version, description=text or None)


@models.command("tag", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("key")
@click.argument("value", required=False)
@click.option("--version", "version", default=None, help="Tag this version instead of the model.")
@click.option("--delete", is_flag=True, help="Delete the tag KEY (give no VALUE).")
@json_option("Print what changed as JSON.")
@click.pass_context
def tag(ctx: click.Context, name: str, key: str, value: str | None, version: str | None, delete: bool,
        as_json: bool) -> None:
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
    _done(as_json, f"Deleted tag {key} of {what}" if delete else f"Tagged {what}: {key}={value}",
          name=name, version=version, key=key, value=value)


@models.command("rename")
@click.argument("name", shell_complete=complete_model)
@click.argument("new_name")
@json_option("Print what changed as JSON.")
@click.pass_context
def rename(ctx: click.Context, name: str, new_name: str, as_json: bool) -> None:
    """Rename model NAME to NEW_NAME: versions, stages, tags, descriptions and comments follow.

    Each tag of NAME is written again under NEW_NAME (same commit, tagger, time and message,
    so gto shows the same history); NAME's versions are deregistered and NAME deprecated.
    """
    from gitml import registry

    registry.rename_model(repo_from(ctx), name, new_name)
    _done(as_json, f"Renamed {name} to {new_name}", name=new_name, old_name=name)


@models.command("copy", epilog=VERSION_HELP)
@click.argument("name", shell_complete=complete_model)
@click.argument("version", shell_complete=complete_version)
@click.argument("dest", shell_complete=complete_model)
@json_option("Print the new version as JSON.")
@click.pass_context
def copy(ctx: click.Context, name: str, version: str, dest: str, as_json: bool) -> None:
    """Copy VERSION of NAME as a new version of model DEST (MLflow's copy_model_version).

    The copy pins the same run commit and model path, with the description and tags.
    """
    from gitml import registry

    v = registry.copy_version(repo_from(ctx), name, version, dest)
    _done(as_json, f"Copied {name} {version} to {dest} {v.version} (version {v.number}): tag {v.tag}", **_version(v))
