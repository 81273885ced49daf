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

from gitml.errors import ConcurrentUpdate, GitmlError, InvalidValue, NotFound
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
from gitml.store import names
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
    name, sep, ref = _split_spec(spec)
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


def _split_spec(spec: str) -> tuple[str, str, str]:
    for sep in ("#", "@", "/"):
        name, found, ref = spec.rpartition(sep)
        if found and name and ref:
            return name, sep, ref
    raise InvalidValue(
        f"Invalid model reference {spec!r}: expected <name>/<version>, <name>/<stage>, "
        "<name>@<stage>, <name>@v<semver> or <name>#<stage>"
    )


# -- changes ---------------------------------------------------------------------------------


def _write(repo: GitRepo, name: str, plan: Callable[[ModelState], Plan]) -> tuple[ModelState, list[str]]:
    """Create the tags ``plan`` asks for against the current state, retrying lost races."""
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

    model, written = _write(repo, name, plan)
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

    model, written = _write(repo, name, plan)
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

    return _write(repo, name, plan)[1]


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

    return _write(repo, name, plan)[1]


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

    return _write(repo, name, plan)[1]


def register_model(repo: GitRepo, model_uri: str, name: str, *, version: str | None = None,
                   bump: str = "patch", description: str | None = None, tags: Mapping[str, str] | None = None,
                   run_link: str | None = None, commit: str | None = None) -> VersionState:
    """Register the model logged at ``runs:/<run_id>/<path>`` as a new version of ``name``.

    The version tag points at the run's commit as it is now (or at ``commit``, a commit
    of that run, when the caller pins one), so later changes to the run do not change
    what the version loads. ``models:/<model>/<version>`` (or ``@<alias>``) registers
    the commit and path that version pins, and is kept as the version's source.

    Raises:
        InvalidValue (not a runs:/ or models:/ URI), RunNotFound, ModelNotFound (no
        MLmodel at that path in the run), and what ``register`` raises.
    """
    from gitml.models.mlmodel import ModelNotFound
    from gitml.tracking import artifacts, runs, writer

    grammar.check_model_name(name)
    uri = str(model_uri)
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
    path = artifacts.validate_artifact_path(path.rstrip("/"), "model path")
    writer.flush_all(repo)  # a run still open in this process: its model must be in the commit
    run_id = runs.resolve_run_id(repo, run_id)
    if commit is None:
        commit = repo.ref_target(names.run_ref(run_id))
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


# -- MLflow's registered models: metadata, deletion, rename, copy, stages and aliases -------------


class ModelExists(GitmlError):
    """A registered model of that name exists already (or its name is taken by git history)."""

    http_status = 409
    error_code = "RESOURCE_ALREADY_EXISTS"


@dataclass
class Registered:
    """One model as MLflow sees it: its tags (None if it has no version yet) and its metadata."""

    name: str
    state: ModelState | None
    meta: metadata.ModelMeta

    @property
    def exists(self) -> bool:
        """MLflow's view: a model exists while GTO says it is active, or, with no tag or a
        deprecated one, while its latest create event came after its latest tag (``after``)."""
        events = self.state.events if self.state is not None else []
        if events and not self.state.deprecated:  # type: ignore[union-attr]
            return True
        if not events:
            return self.meta.exists is True
        return self.meta.exists is True and self.meta.after is not None and self.meta.after == events[-1].tag

    def versions(self) -> list[VersionState]:
        """Its active versions (MLflow's view: a deregistered version is a deleted one)."""
        return self.state.active_versions() if self.state is not None else []

    def version(self, ref: str | int) -> VersionState:
        """An active version by number or semver.

        Raises:
            VersionNotFound
        """
        if self.state is None:
            raise VersionNotFound(f"Model Version (name={self.name}, version={ref}) not found")
        v = find_version(self.state, ref)
        if not v.active:
            raise VersionNotFound(f"Model Version (name={self.name}, version={ref}) not found (deregistered)")
        return v


def registered(repo: GitRepo, name: str, *, must_exist: bool = True) -> Registered:
    """A model's tags and metadata.

    Raises:
        ModelNotRegistered (``must_exist`` and MLflow would not see it), InvalidName
    """
    grammar.check_model_ref(name)
    model = Registered(name, load(repo, name).get(name), metadata.read(repo, [name])[name])
    if must_exist and not model.exists:
        raise ModelNotRegistered(f"Registered Model with name={name} not found")
    return model


def registered_models(repo: GitRepo) -> list[Registered]:
    """Every model MLflow would list, by name (with tags, or only metadata)."""
    states = load(repo)
    metas = metadata.read_all(repo)
    for name in set(states) - set(metas):
        metas[name] = metadata.ModelMeta(name)
    found = [Registered(n, states.get(n), metas[n]) for n in sorted(metas)]
    return [m for m in found if m.exists]


def create_model(repo: GitRepo, name: str, description: str | None = None,
                 tags: Mapping[str, str] | None = None) -> Registered:
    """MLflow's ``create_registered_model``: a model with no version yet, in the metadata log.

    A deleted (deprecated) model's name can be used again; its old versions stay
    deregistered, and the numbers of new ones follow theirs.

    Raises:
        ModelExists, InvalidName, InvalidValue
    """
    grammar.check_model_name(name)
    description = metadata.check_description(description)
    checked = dict(metadata.check_tag(k, v) for k, v in (tags or {}).items())
    model = registered(repo, name, must_exist=False)
    if model.exists:
        raise ModelExists(f"Registered Model (name={name}) already exists.")
    after = model.state.events[-1].tag if model.state is not None and model.state.events else None
    lines = [metadata.event(name, metadata.CREATE, description=description, after=after)]
    lines += [metadata.event(name, metadata.TAG, key=k, value=v) for k, v in checked.items()]
    metadata.append(repo, {name: lines}, f"gitml: create model {name}\n")
    return registered(repo, name)


def update_model(repo: GitRepo, name: str, description: str | None) -> Registered:
    """Set (or clear, with None) a model's description.

    Raises:
        ModelNotRegistered, InvalidValue
    """
    description = metadata.check_description(description)
    registered(repo, name)
    metadata.append(repo, {name: [metadata.event(name, metadata.DESCRIBE, value=description)]},
                    f"gitml: describe model {name}\n")
    return registered(repo, name)


def set_model_tag(repo: GitRepo, name: str, key: str, value: str | None) -> None:
    """Set a model's tag (``value`` None deletes it; deleting a tag it lacks writes nothing).

    Raises:
        ModelNotRegistered, InvalidName, InvalidValue
    """
    if value is None:
        key = metadata.check_tag(key, "")[0]
    else:
        key, value = metadata.check_tag(key, value)
    model = registered(repo, name)
    if value is None and key not in model.meta.tags:
        return
    metadata.append(repo, {name: [metadata.event(name, metadata.TAG, key=key, value=value)]},
                    f"gitml: {'delete' if value is None else 'set'} tag {key} of model {name}\n")


def describe_version(repo: GitRepo, name: str, version: str | int, description: str | None) -> VersionState:
    """Set (or clear) a version's description (a metadata event: a tag message cannot change).

    Raises:
        ModelNotRegistered, VersionNotFound, InvalidValue
    """
    description = metadata.check_description(description)
    v = registered(repo, name).version(version)
    metadata.append(repo, {name: [metadata.event(name, metadata.DESCRIBE, version=v.version, value=description)]},
                    f"gitml: describe {name} {v.version}\n")
    return v


def set_version_tag(repo: GitRepo, name: str, version: str | int, key: str, value: str | None) -> None:
    """Set a version's tag (``value`` None deletes it; deleting a tag it lacks writes nothing).

    Raises:
        ModelNotRegistered, VersionNotFound, InvalidName, InvalidValue
    """
    from gitml.registry.entities import version_tags

    if value is None:
        key = metadata.check_tag(key, "")[0]
    else:
        key, value = metadata.check_tag(key, value)
    model = registered(repo, name)
    v = model.version(version)
    if value is None and key not in version_tags(v, model.meta.version(v.version)):
        return
    metadata.append(repo, {name: [metadata.event(name, metadata.TAG, version=v.version, key=key, value=value)]},
                    f"gitml: {'delete' if value is None else 'set'} tag {key} of {name} {v.version}\n")


def delete_model(repo: GitRepo, name: str, message: str | None = None) -> list[str]:
    """MLflow's ``delete_registered_model``: deregister every version, deprecate the model
    (dated a second later, so GTO sees the deprecation last), and reset its metadata.
    The tags stay: history is kept, and ``gto show`` no longer lists the model.

    Returns the tags written.

    Raises:
        ModelNotRegistered
    """
    model = registered(repo, name)
    written: list[str] = []
    if model.state is not None and model.state.events and not model.state.deprecated:

        def plan(state: ModelState) -> Plan:
            if state.deprecated:
                return []
            n = state.next_counter
            todo = []
            for v in state.active_versions():
                event = grammar.TagName(name, grammar.DEREGISTER, version=v.version)
                if grammar.format(event) in state.tag_names:
                    event, n = grammar.TagName(name, grammar.DEREGISTER, version=v.version, counter=n), n + 1
                todo.append(Planned(event, v.commit, f"Deregistering model {name} version {v.version}: "
                                                     f"{message or 'the model is deleted'}\n"))
            first = grammar.format(grammar.TagName(name, grammar.DEPRECATE)) not in state.tag_names
            todo.append(Planned(grammar.TagName(name, grammar.DEPRECATE, counter=None if first else n),
                                state.events[-1].commit, (message or f"Deleting model {name}") + "\n", 1))
            return todo

        written = _write(repo, name, plan)[1]
    metadata.append(repo, {name: [metadata.event(name, metadata.DELETE)]}, f"gitml: delete model {name}\n")
    return written


def transition(repo: GitRepo, name: str, version: str | int, stage: str,
               archive_existing: bool = False) -> tuple[VersionState, list[str]]:
    """MLflow's ``transition_model_version_stage`` over GTO stages, in one set of tags.

    For MLflow's stages (Staging, Production, Archived) the version leaves its other MLflow
    stage, as a version has one ``current_stage``; aliases (other stages) are untouched.
    ``"None"`` takes it out of MLflow's stages. The stage's previous holder is unassigned
    (one version per stage, GTO's default) and, with ``archive_existing``, put in
    ``archived`` (which holds one version too). Any other stage is assigned as ``assign`` does.

    Raises:
        ModelNotRegistered, VersionNotFound, RegistryConflict, InvalidName
    """
    from gitml.registry.entities import is_mlflow_stage

    wanted = stage.strip().lower() if isinstance(stage, str) else ""
    if wanted != "none":
        grammar.check_stage(stage)
    registered(repo, name).version(version)

    def plan(model: ModelState) -> Plan:
        v = find_version(model, version, active_only=True)
        n = model.next_counter
        todo: Plan = []

        def add(action: str, spelled: str, who: VersionState, text: str) -> None:
            nonlocal n
            todo.append(Planned(grammar.TagName(name, action, stage=spelled, counter=n), who.commit, text + "\n"))
            n += 1

        target = model.stage_name(stage) if wanted != "none" else None
        mlflow = wanted == "none" or is_mlflow_stage(wanted)
        if mlflow:
            for held in v.stages:
                if is_mlflow_stage(held) and held != target:
                    add(grammar.UNASSIGN, held, v, f"Transitioning model {name} version {v.version} "
                                                   f"from {held} to {stage}")
        if target is None or target in v.stages:
            return todo
        holder = model.stages.get(target)
        if holder is not None:
            add(grammar.UNASSIGN, target, holder, f"Unassigning stage {target} from model {name} version "
                                                  f"{holder.version}: {v.version} takes it")
            if archive_existing and target.lower() != "archived" and "archived" not in {s.lower() for s in holder.stages}:
                spelled = model.stage_name("archived")
                archived = model.stages.get(spelled)
                if archived is not None and archived.version != holder.version:
                    add(grammar.UNASSIGN, spelled, archived, f"Unassigning stage {spelled} from model {name} "
                                                             f"version {archived.version}: {holder.version} takes it")
                add(grammar.ASSIGN, spelled, holder, f"Archiving model {name} version {holder.version}")
        add(grammar.ASSIGN, target, v, f"Assigning stage {target} to model {name} version {v.version}")
        return todo

    model, written = _write(repo, name, plan)
    return find_version(model, version), written


def delete_alias(repo: GitRepo, name: str, alias: str) -> list[str]:
    """Take ``alias`` (a GTO stage) from the version holding it; nothing if none does.

    Raises:
        ModelNotRegistered, InvalidName
    """
    grammar.check_stage(alias)
    model = registered(repo, name)
    if model.state is None:
        return []
    holder = model.state.stages.get(model.state.stage_name(alias))
    if holder is None:
        return []
    return unassign(repo, name, holder.version, alias)


def alias_version(repo: GitRepo, name: str, alias: str) -> VersionState:
    """The version holding ``alias``; ``latest`` (any case) is the highest version number, as in MLflow.

    Raises:
        ModelNotRegistered, VersionNotFound, InvalidName
    """
    model = registered(repo, name)
    if alias.lower() == "latest":
        versions = model.versions()
        if not versions:
            raise VersionNotFound(f"Latest version not found for model {name}.")
        return versions[-1]
    grammar.check_stage(alias)
    holder = model.state.stages.get(model.state.stage_name(alias)) if model.state is not None else None
    if holder is None:
        raise VersionNotFound(f"Registered model alias {alias} not found.")
    return holder


def copy_version(repo: GitRepo, src_name: str, src_version: str | int, dst_name: str) -> VersionState:
    """MLflow's ``copy_model_version``: a new version of ``dst_name`` (created if need be) with the
    source version's pinned commit, model path, run, description, tags and run link; its source
    is ``models:/<src_name>/<number>``.

    Raises:
        ModelNotRegistered, VersionNotFound, InvalidName, RegistryConflict
    """
    from gitml.registry.entities import description, version_tags

    src = registered(repo, src_name)
    v = src.version(src_version)
    grammar.check_model_name(dst_name)
    if not registered(repo, dst_name, must_exist=False).exists:
        create_model(repo, dst_name)
    vm = src.meta.version(v.version)
    return register(repo, dst_name, v.commit, path=v.path, run_id=v.run_id, description=description(v, vm),
                    tags=version_tags(v, vm), run_link=v.run_link, source=f"models:/{src_name}/{v.number}")


def rename_model(repo: GitRepo, name: str, new_name: str) -> Registered:
    """MLflow's ``rename_registered_model``: every version, stage, alias, tag, description and
    comment follows the new name.

    GTO reads tags by name, and tags never move (a pushed tag comes back on the next fetch), so
    each of the model's tags is written again under the new name (same target, message, tagger
    and time: ``gto show`` shows the same versions and stages), the old name's versions are
    deregistered and the old name deprecated a second later (so reusing it does not bring
    them back), and the metadata and comments are copied. Tags are written first, in one
    all-or-nothing step; the notes after.

    Raises:
        ModelNotRegistered, ModelExists (the new name is taken, by a model or by git
        history of one), InvalidName, ConcurrentUpdate
    """
    grammar.check_model_name(new_name)
    if new_name == name:
        raise ModelExists(f"Registered Model (name={new_name}) already exists.")
    for _ in range(CAS_RETRIES):
        old = registered(repo, name)
        new = registered(repo, new_name, must_exist=False)
        if new.exists:
            raise ModelExists(f"Registered Model (name={new_name}) already exists.")
        taken = load_model_for_write(repo, new_name).tag_names
        if taken:
            raise ModelExists(f"Registered Model (name={new_name}) already exists in git history: it has tags "
                              f"({sorted(taken)[0]}...) that gto would read with the renamed model's; "
                              "choose another name")
        refs: dict[str, str] = {}
        copies: dict[str, str] = {}  # old registration tag oid -> new one (comments follow)
        after = None
        state = load_model_for_write(repo, name) if old.state is not None else None
        if state is not None:
            for e in state.events:
                event = grammar.TagName(new_name, e.action, e.version, e.stage, e.counter)
                tag = grammar.check_tag_name(grammar.format(event))
                oid = repo.write_tag(tag, e.commit, e.message, signature=(e.author, e.email, e.time, e.offset))
                refs["refs/tags/" + tag] = oid
                if e.action == grammar.REGISTER:
                    copies[e.oid] = oid
                after = tag
            if not state.deprecated:
                after = None
                n, when = state.next_counter, max(int(time.time()), state.last_time + 1)
                for v in state.active_versions():
                    event = grammar.TagName(name, grammar.DEREGISTER, version=v.version)
                    if grammar.format(event) in state.tag_names:
                        event, n = grammar.TagName(name, grammar.DEREGISTER, version=v.version, counter=n), n + 1
                    tag = grammar.format(event)
                    refs["refs/tags/" + tag] = repo.write_tag(
                        tag, v.commit, f"Deregistering model {name} version {v.version}: renamed to {new_name}\n", when)
                first = grammar.format(grammar.TagName(name, grammar.DEPRECATE)) not in state.tag_names
                tag = grammar.format(grammar.TagName(name, grammar.DEPRECATE, counter=None if first else n))
                refs["refs/tags/" + tag] = repo.write_tag(tag, state.events[-1].commit,
                                                          f"Renaming model {name} to {new_name}\n", when + 1)
        if refs and not repo.create_refs(refs):
            continue  # another writer got there first: plan again
        break
    else:
        raise ConcurrentUpdate(f"Gave up renaming {name!r} after {CAS_RETRIES} attempts")

    # the new name's log: a create, then one line per thing set (model tags, versions' descriptions and tags)
    meta = old.meta
    lines = [metadata.event(new_name, metadata.CREATE, description=meta.description, after=after, **{"from": name})]
    lines += [metadata.event(new_name, metadata.TAG, key=k, value=v) for k, v in meta.tags.items() if v is not None]
    for v in old.state.versions if old.state is not None else []:
        vm = meta.versions.get(v.version)
        if vm is not None and vm.described:
            lines.append(metadata.event(new_name, metadata.DESCRIBE, version=v.version, value=vm.description))
        for k, value in (vm.tags.items() if vm is not None else ()):
            lines.append(metadata.event(new_name, metadata.TAG, version=v.version, key=k, value=value))
    notes = registry_notes(repo)

    def union(text: str) -> Callable[[str | None], str]:
        def edit(current: str | None) -> str:
            have = set((current or "").split("\n"))
            extra = [line for line in text.split("\n") if line and line not in have]
            return ((current or "").rstrip("\n") + "\n" if current and current.strip() else "") + \
                "".join(line + "\n" for line in extra)
        return edit

    comments_ = {new_oid: union(notes[old_oid]) for old_oid, new_oid in copies.items() if notes.get(old_oid)}
    metadata.append(repo, {name: [metadata.event(name, metadata.RENAME, to=new_name)], new_name: lines},
                    f"gitml: rename model {name} to {new_name}\n", extra=comments_)
    return registered(repo, new_name)
