"""The model registry: versions and stages as git tags (GTO's grammar), comments as notes.

Every change is one or more annotated tags created together or not at all
(the refs' locks are taken first and none may exist yet). Two writers that
race both compute the same next tag name; one wins, the other re-reads the
state and tries again with the next counter, so both events are recorded
and the later one decides who holds the stage.

A tag is dated one second after the latest event on the same version when
they would fall in the same second, so tools that order events by time
alone, such as GTO, see them in the same order as gitml; a registration is
dated after the model's latest registration, so version numbers (the order
of registration) do not depend on how same-second events are ordered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from gitml.errors import ConcurrentUpdate, GitmlError, InvalidValue, ModelNotFound, NotFound
from gitml.registry import tags as grammar
from gitml.registry import metadata
from gitml.registry.state import (
    MODEL_PATH_TRAILER,
    RUN_LINK_TRAILER,
    RUN_TRAILER,
    SOURCE_TRAILER,
    TAGS_TRAILER,
    Event,
    ModelState,
    VersionState,
    load,
    load_model_for_write,
    registry_notes,
    run_metrics,
    semver_key,
)
from gitml.store import ledger, names
from gitml.store.repo import CAS_RETRIES, GitRepo

__all__ = [
    "Comment", "Event", "ModelDeprecated", "ModelExists", "ModelState", "ModelNotRegistered", "Registered",
    "RegistryConflict", "VersionNotFound", "VersionState",
    "alias_version", "assign", "comment", "comments", "copy_version", "create_model", "delete_alias",
    "delete_model", "deprecate", "deregister", "describe_version", "find_version", "get_model", "load",
    "register", "register_model", "registered", "registered_models", "rename_model", "resolve",
    "run_metrics", "set_model_tag", "set_version_tag", "transition", "unassign", "update_model",
]


class ModelNotRegistered(NotFound):
    """No registry tag names this model."""


class VersionNotFound(NotFound):
    """The model has no such version, or no version in that stage."""


class ModelDeprecated(NotFound):
    """The model is deprecated: it does not load until a new version is registered."""


class RegistryConflict(GitmlError):
    """The change contradicts the registry's state (a version exists, a stage is not held...)."""

    http_status = 400
    error_code = "INVALID_STATE"


@dataclass(frozen=True)
class Comment:
    """A comment on a version, kept in ``refs/notes/gitml-registry`` on its registration tag."""

    time: int
    author: str
    email: str
    text: str


class Planned(NamedTuple):
    """One tag a change writes: its name, target, message; dated ``delay`` seconds after the change
    (a deprecation must come after the deregistrations written with it: GTO orders by time alone)."""

    event: grammar.TagName
    target: str
    message: str
    delay: int = 0


Plan = list[Planned]


def get_model(repo: GitRepo, name: str) -> ModelState:
    """The state of one model.

    Raises:
        ModelNotRegistered, InvalidName
    """
    grammar.check_model_ref(name)
    model = load(repo, name).get(name)
    if model is None:
        raise ModelNotRegistered(f"No registered model named {name!r}")
    return model


def find_version(model: ModelState, ref: str | int, *, active_only: bool = False) -> VersionState:
    """The version ``ref`` names: a number (``3``), a semver (``v1.2.0`` or ``1.2.0``) or ``latest``.

    Raises:
        VersionNotFound
    """
    ref = str(ref).strip()
    found: VersionState | None
    if ref.isdigit():
        n = int(ref)
        found = model.versions[n - 1] if 1 <= n <= len(model.versions) else None
        what = f"version {n}"
    elif ref in ("latest", "greatest"):
        found = model.latest()
        what = "an active version"
    else:
        version = grammar.check_version(ref)
        found = model.by_version(version)
        what = f"version {version}"
    if found is None:
        known = ", ".join(f"{v.number}={v.version}" for v in model.versions[-5:]) or "none"
        raise VersionNotFound(f"Model {model.name!r} has no {what} (latest versions: {known})")
    if active_only and not found.active:
        raise RegistryConflict(f"{model.name} {found.version} was deregistered")
    return found


def resolve(repo: GitRepo, spec: str) -> VersionState:
    """The version a registry reference names, for loading and serving.

    ``rf/3`` (third version), ``rf/v1.2.0``, ``rf/Production`` (stage),
    ``rf/latest``, ``rf@production`` (stage, MLflow's alias form),
    ``rf@v1.2.0`` and ``rf#production`` (GTO's shorthands).

    Stages match case-insensitively (``rf#production`` finds a stage
    ``Production`` written by ``gto``).

    Raises:
        ModelNotRegistered, ModelDeprecated (as MLflow's deleted models, a
        deprecated model does not load), VersionNotFound, InvalidValue
    """
    name, sep, ref = grammar.split_reference(spec)
    model = get_model(repo, name)
    if model.deprecated:
        raise ModelDeprecated(f"Model {name} is deprecated; register a new version to revive it")
    if sep == "/" and (ref.isdigit() or ref in ("latest", "greatest") or grammar.VERSION_RE.match(ref)):
        return find_version(model, ref, active_only=True)
    if sep == "@" and (ref in ("latest", "greatest") or grammar.VERSION_RE.match(ref)):
        return find_version(model, ref, active_only=True)
    stage = model.stage_name(grammar.check_stage(ref))
    holder = model.stages.get(stage)
    if holder is None:
        held = ", ".join(sorted(model.stages)) or "none"
        raise VersionNotFound(f"No version of {name!r} is in stage {stage!r} (stages held: {held})")
    return holder


# -- changes ---------------------------------------------------------------------------------


def write_tags(repo: GitRepo, name: str, plan: Callable[[ModelState], Plan]) -> tuple[ModelState, list[str]]:
    """Create the tags ``plan(state)`` asks for against the model's current state, all or none,
    re-planning after a lost race; return the new state and the tags written.

    Raises:
        RegistryConflict (a planned name is taken by a tag gitml cannot read), ConcurrentUpdate,
        and what ``plan`` raises.
    """
    grammar.check_model_name(name)
    for _ in range(CAS_RETRIES):
        model = load_model_for_write(repo, name)
        todo = plan(model)
        if not todo:
            return model, []
        when = _tag_time(model, todo)
        for p in todo:  # every name checked before the first tag object is written
            grammar.check_tag_name(grammar.format(p.event))
        refs = {}
        for event, target, message, delay in todo:
            tag = grammar.format(event)
            if tag in model.tag_names:
                # In the listing the plan was made from, so not a lost race: a tag
                # gitml does not read as an event (lightweight, or unreadable).
                raise RegistryConflict(
                    f"Tag {tag} exists already but is not a registry event gitml can read "
                    f"(a lightweight tag?); delete it (git tag -d '{tag}') or choose another version")
            refs["refs/tags/" + tag] = repo.write_tag(tag, target, message, when + delay)
        if repo.create_refs(refs):
            return load(repo, name)[name], [r[len("refs/tags/") :] for r in refs]
    raise ConcurrentUpdate(f"Gave up writing registry tags for {name!r} after {CAS_RETRIES} attempts")


def _tag_time(model: ModelState, todo: Plan) -> int:
    """Now, or one second after the latest event on the same versions (GTO orders events by
    time alone, at one-second resolution, so a same-second event could read as older).

    A registration is dated after the model's latest registration too: version numbers
    count registrations in time order, so each new one must sort last.
    """
    touched = {p.target for p in todo}
    deprecating = any(p.event.action == grammar.DEPRECATE for p in todo)
    registering = any(p.event.action == grammar.REGISTER for p in todo)
    related = [e.time for e in model.events if deprecating or model.deprecated or e.commit in touched
               or (registering and e.action == grammar.REGISTER)]
    return max([int(time.time())] + [t + 1 for t in related])


def register(repo: GitRepo, name: str, commit: str, *, path: str | None, run_id: str | None,
             version: str | None = None, bump: str = "patch", description: str | None = None,
             tags: Mapping[str, str] | None = None, run_link: str | None = None,
             source: str | None = None) -> VersionState:
    """Register the model in run commit ``commit`` as a new version of ``name``.

    ``version`` is explicit (``v1.2.0``) or the highest existing one bumped
    (``bump``: major, minor or patch; the first version is v0.0.1, as in GTO).
    ``tags``, ``run_link`` and ``source`` (MLflow's, when the version is made through its
    API) go in the tag message as trailers, so they are written with the version or not at all.

    A commit that is a version of the model already (the same run registered twice, as
    MLflow allows) gets a version commit: the same tree, the run commit as its parent. GTO
    reads one version per commit (``gto show`` fails on two), and the version still loads
    exactly the files of the run commit it names.

    Raises:
        InvalidName, InvalidValue, RegistryConflict (the version exists).
    """
    if bump not in ("major", "minor", "patch"):
        raise InvalidValue(f"Invalid bump {bump!r}: use major, minor or patch")
    wanted = grammar.check_version(version) if version else None
    checked = dict(metadata.check_tag(k, v) for k, v in (tags or {}).items())
    description = metadata.check_description(description)
    for what, value in (("run link", run_link), ("source", source)):
        if value is not None and (not isinstance(value, str) or "\n" in value or len(value) > 10_000):
            raise InvalidValue(f"Invalid {what} {str(value)[:60]!r}: one line of at most 10000 characters")

    def plan(model: ModelState) -> Plan:
        if wanted is not None:
            if model.by_version(wanted) is not None:
                raise RegistryConflict(f"{name} {wanted} exists already; choose another version")
            new = wanted
        elif model.versions:
            top = max((v.version for v in model.versions), key=semver_key)
            new = "v" + str(getattr(semver_key(top), f"bump_{bump}")())
        else:
            new = "v0.0.1"
        target = commit
        if model.by_commit(commit) is not None:
            target = _version_commit(repo, name, new, commit, run_id)
        text = description.strip() if description and description.strip() else f"Registering model {name} version {new}"
        trailers = "".join(f"{k} {v}\n" for k, v in (
            (MODEL_PATH_TRAILER, path), (RUN_TRAILER, run_id), (SOURCE_TRAILER, source), (RUN_LINK_TRAILER, run_link),
            (TAGS_TRAILER, json.dumps(checked, ensure_ascii=False, sort_keys=True) if checked else None)) if v)
        message = f"{text}\n\n{trailers}" if trailers else text + "\n"
        return [Planned(grammar.TagName(name, grammar.REGISTER, version=new), target, message)]

    model, written = write_tags(repo, name, plan)
    return model.by_version(grammar.parse(written[0]).version)  # type: ignore[union-attr,arg-type,return-value]


def _version_commit(repo: GitRepo, name: str, version: str, commit: str, run_id: str | None) -> str:
    """A commit with ``commit``'s tree and ``commit`` as parent, for a second version of one run commit.

    Raises:
        RegistryConflict: ``commit`` is not a commit (GTO can tag a tree or a blob).
    """
    if not repo.is_commit(commit):
        raise RegistryConflict(f"{commit[:12]} is a version of {name} already and is not a commit, "
                               "so it cannot be registered again")
    tree = repo.commit_info(commit).tree
    return repo.write_commit(tree, [commit], (
        f"gitml: version {version} of model {name} registers {('run ' + run_id) if run_id else 'commit ' + commit} again\n\n"
        f"Same tree as {commit}, which is a version of {name} already: GTO reads one version per commit.\n"))


def assign(repo: GitRepo, name: str, version: str | int, stage: str, message: str | None = None) -> tuple[VersionState, list[str]]:
    """Put ``version`` in ``stage``; the version that held it is unassigned in the same step.

    Returns the version and the tags written (none if it held the stage already).

    Raises:
        ModelNotRegistered, VersionNotFound, RegistryConflict (deregistered version), InvalidName
    """
    wanted = grammar.check_stage(stage)
    get_model(repo, name)

    def plan(model: ModelState) -> Plan:
        stage = model.stage_name(wanted)  # the spelling the model's tags use, if any
        v = find_version(model, version, active_only=True)
        holder = model.stages.get(stage)
        if holder is not None and holder.version == v.version:
            return []
        n = model.next_counter
        todo: Plan = []
        if holder is not None:
            todo.append(Planned(grammar.TagName(name, grammar.UNASSIGN, stage=stage, counter=n), holder.commit,
                         f"Unassigning stage {stage} from model {name} version {holder.version}: {v.version} takes it\n"))
            n += 1
        text = message or f"Assigning stage {stage} to model {name} version {v.version}"
        todo.append(Planned(grammar.TagName(name, grammar.ASSIGN, stage=stage, counter=n), v.commit, text.strip() + "\n"))
        return todo

    model, written = write_tags(repo, name, plan)
    return find_version(model, version), written


def unassign(repo: GitRepo, name: str, version: str | int, stage: str, message: str | None = None) -> list[str]:
    """Take ``version`` out of ``stage``.

    Raises:
        ModelNotRegistered, VersionNotFound, RegistryConflict (it does not hold that stage)
    """
    wanted = grammar.check_stage(stage)
    get_model(repo, name)

    def plan(model: ModelState) -> Plan:
        stage = model.stage_name(wanted)
        v = find_version(model, version)
        if stage not in v.stages:
            held = ", ".join(v.stages) or "no stage"
            raise RegistryConflict(f"{name} {v.version} is not in stage {stage!r} (it holds {held})")
        text = message or f"Unassigning stage {stage} from model {name} version {v.version}"
        return [Planned(grammar.TagName(name, grammar.UNASSIGN, stage=stage, counter=model.next_counter), v.commit,
                 text.strip() + "\n")]

    return write_tags(repo, name, plan)[1]


def deregister(repo: GitRepo, name: str, version: str | int, message: str | None = None) -> list[str]:
    """Deregister a version (``rf@v1.2.0!``): it no longer loads, serves or holds stages.

    Raises:
        ModelNotRegistered, VersionNotFound, RegistryConflict (deregistered already)
    """
    get_model(repo, name)

    def plan(model: ModelState) -> Plan:
        v = find_version(model, version, active_only=True)
        text = message or f"Deregistering model {name} version {v.version}"
        event = grammar.TagName(name, grammar.DEREGISTER, version=v.version)
        if grammar.format(event) in model.tag_names:  # deregistered before, and registered again
            event = grammar.TagName(name, grammar.DEREGISTER, version=v.version, counter=model.next_counter)
        return [Planned(event, v.commit, text.strip() + "\n")]

    return write_tags(repo, name, plan)[1]


def deprecate(repo: GitRepo, name: str, message: str | None = None) -> list[str]:
    """Deprecate the whole model (``rf@deprecated``); a later registration revives it.

    Raises:
        ModelNotRegistered, RegistryConflict (deprecated already)
    """
    get_model(repo, name)

    def plan(model: ModelState) -> Plan:
        if model.deprecated:
            raise RegistryConflict(f"Model {name!r} is deprecated already")
        first = grammar.format(grammar.TagName(name, grammar.DEPRECATE)) not in model.tag_names
        target = model.events[-1].commit
        text = message or f"Deprecating model {name}"
        return [Planned(grammar.TagName(name, grammar.DEPRECATE, counter=None if first else model.next_counter), target,
                        text.strip() + "\n")]

    return write_tags(repo, name, plan)[1]


def register_model(repo: GitRepo, model_uri: str, name: str, *, version: str | None = None,
                   bump: str = "patch", description: str | None = None, tags: Mapping[str, str] | None = None,
                   run_link: str | None = None, commit: str | None = None) -> VersionState:
    """Register the model logged at ``runs:/<run_id>/<path>`` (or ``models:/<logged model id>``) as a new
    version of ``name``.

    The version tag points at the run's commit as it is now (or at ``commit``, a commit
    of that run, when the caller pins one), so later changes to the run do not change
    what the version loads. ``models:/<model>/<version>`` (or ``@<alias>``) registers
    the commit and path that version pins, and is kept as the version's source.

    Raises:
        InvalidValue (not a runs:/ or models:/ URI), RunNotFound, ModelNotFound (no
        MLmodel at that path in the run), and what ``register`` raises.
    """
    from gitml.tracking import artifacts, process, runs, validation

    grammar.check_model_name(name)
    uri = str(model_uri)
    if uri.startswith("models:/m-"):  # MLflow 3's logged-model URI: the run's model directory
        from gitml.tracking.logged_models import locate

        uri = "runs:/{}/{}".format(*locate(repo, uri[len("models:/") :].strip("/")))
    if uri.startswith("models:/"):
        src = resolve(repo, uri[len("models:/") :].strip("/"))
        if src.run_id is None or src.path is None:
            raise InvalidValue(f"Cannot register {uri!r}: that version names no run model (it was not registered by gitml)")
        return register(repo, name, src.commit, path=src.path, run_id=src.run_id, version=version, bump=bump,
                        description=description, tags=tags, run_link=run_link, source=uri)
    run_id, _, path = uri[len("runs:/") :].strip("/").partition("/") if uri.startswith("runs:/") else ("", "", "")
    path = path.lstrip("/")  # runs:/<id>//model, from f"{run.info.artifact_uri}/model"
    if not run_id or not path:
        raise InvalidValue(
            f"Cannot register {uri!r}: a version is a tag on a run's commit, so give the model as "
            "runs:/<run_id>/<artifact path>"
        )
    path = validation.validate_artifact_path(path.rstrip("/"), "model path")
    process.flush_all(repo)  # a run still open in this process: its model must be in the commit
    run_id = runs.resolve_run_id(repo, run_id)
    if commit is None:
        commit = ledger.run_commit(repo, run_id)
    else:
        _check_run_commit(repo, run_id, commit)
    if commit is None or f"{path}/MLmodel" not in artifacts.manifest(repo, run_id, commit):
        raise ModelNotFound(f"Run {run_id} has no model at {path!r} (no {path}/MLmodel among its artifacts)")
    return register(repo, name, commit, path=path, run_id=run_id, version=version, bump=bump,
                    description=description, tags=tags, run_link=run_link)


def _check_run_commit(repo: GitRepo, run_id: str, commit: str) -> None:
    """Raises InvalidValue unless ``commit`` is a commit of run ``run_id``."""
    from gitml.errors import CorruptRun
    from gitml.tracking.runfiles import read_state

    try:
        read_state(repo, commit, run_id)
    except (CorruptRun, KeyError, ValueError) as e:
        raise InvalidValue(f"{commit[:12]} is not a commit of run {run_id}: {e}") from None


# -- comments --------------------------------------------------------------------------------


def comment(repo: GitRepo, name: str, version: str | int, text: str) -> Comment:
    """Add a comment to a version (a JSON line in the note on its registration tag).

    Raises:
        ModelNotRegistered, VersionNotFound, InvalidValue (empty text)
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue("A comment needs some text")
    v = find_version(get_model(repo, name), version)
    sig = repo.signature()
    c = Comment(int(time.time()), sig.name, sig.email, text.strip())
    line = json.dumps({"time": c.time, "author": c.author, "email": c.email, "text": c.text}, ensure_ascii=False)

    def edit(old: str | None) -> str:
        return (old or "").rstrip("\n") + ("\n" if old and old.strip() else "") + line + "\n"

    repo.update_notes(names.REGISTRY_NOTES_REF, {v.tag_oid: edit}, f"gitml: comment on {v.tag}\n")
    return c


def parse_comments(text: str | None) -> list[Comment]:
    out = []
    for line in (text or "").splitlines():
        try:
            d = json.loads(line)
            out.append(Comment(int(d["time"]), str(d["author"]), str(d["email"]), str(d["text"])))
        except (ValueError, KeyError, TypeError):
            if line.strip():  # a note someone wrote by hand with `git notes`
                out.append(Comment(0, "", "", line.strip()))
    return out


def comments(repo: GitRepo, versions: list[VersionState]) -> dict[str, list[Comment]]:
    """Tag name -> comments, for these versions (the notes are cached by the notes commit)."""
    if not versions:
        return {}
    notes = registry_notes(repo)
    return {v.tag: parse_comments(notes.get(v.tag_oid)) for v in versions}


# MLflow's registered models (existence, metadata, delete, rename, copy, transitions, aliases) live
# in ``models``; they are re-exported here so callers write ``registry.create_model(...)``.
from gitml.registry.models import (  # noqa: E402
    ModelExists,
    Registered,
    alias_version,
    copy_version,
    create_model,
    delete_alias,
    delete_model,
    describe_version,
    registered,
    registered_models,
    rename_model,
    set_model_tag,
    set_version_tag,
    transition,
    update_model,
)
