"""MLflow's registered models over the tags and the metadata log: when a model exists, its
descriptions and tags, delete, rename, copy, MLflow's stage transitions and aliases.

The tags are written through ``gitml.registry.write_tags`` (all or none, re-planned after a lost
race); the metadata through ``gitml.registry.metadata.append`` (one notes commit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gitml.errors import ConcurrentUpdate, GitmlError
from gitml.registry import (
    ModelNotRegistered,
    Plan,
    Planned,
    VersionNotFound,
    find_version,
    load,
    load_model_for_write,
    metadata,
    register,
    registry_notes,
    unassign,
    write_tags,
)
from gitml.registry import tags as grammar
from gitml.registry.state import ModelState, VersionState
from gitml.store.repo import CAS_RETRIES, GitRepo


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

        written = write_tags(repo, name, plan)[1]
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

    model, written = write_tags(repo, name, plan)
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
