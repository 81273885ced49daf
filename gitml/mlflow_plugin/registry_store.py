"""MLflow's model registry store over a git repository (``registry_uri="gitml:<repo>"``).

A thin shell: each method checks its arguments with MLflow's own validators (so bad input
gets MLflow's messages and error codes), makes one call into ``gitml.registry`` (the
functions ``gitml.Client`` and ``gitml models ...`` use), and turns gitml's entities into
MLflow's. A ``GitmlError`` becomes an ``MlflowException`` with the same error code.

What lives where in git is in ``docs/mlflow.md`` ("What maps to what (registry)"): versions
and stages are GTO tags, aliases are GTO stages, descriptions and tags are the registry's
metadata log in ``refs/notes/gitml-registry``. Prompts and webhooks have no git home: listing
them gives nothing, anything else is an ``MlflowException`` (``NOT_IMPLEMENTED``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from mlflow.entities.model_registry.model_version_stages import get_canonical_stage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, NOT_IMPLEMENTED, ErrorCode
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import (
    SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
    SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
)
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.validation import (
    _validate_model_alias_name,
    _validate_model_alias_name_reserved,
    _validate_model_name,
    _validate_model_renaming,
    _validate_model_version,
    _validate_model_version_tag,
    _validate_registered_model_tag,
    _validate_tag_name,
)

from gitml import registry
from gitml.errors import GitmlError, InvalidValue
from gitml.tracking import uri
from gitml.registry import entities, views
from gitml.store.repo import GitRepo

F = TypeVar("F", bound=Callable[..., Any])
#: Tags MLflow marks prompts with (``mlflow.prompt.is_prompt``, ``mlflow.prompt.text``...).
_PROMPT_TAGS = "mlflow.prompt."
#: MLflow 3's logged-model URI (``models:/m-<id>``), as opposed to ``models:/<name>/<version>``.
_LOGGED_MODEL = re.compile(r"^models:/(m-[0-9a-f]{32})/?$")


def _mlflow_errors(f: F) -> F:
    """gitml's errors as MLflow's: same message, same error code (the REST server maps it to HTTP)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except GitmlError as e:
            code = e.error_code if e.error_code in ErrorCode.keys() else "INTERNAL_ERROR"
            raise MlflowException(e.message, error_code=ErrorCode.Value(code)) from e

    return wrapper  # type: ignore[return-value]


def _unsupported(feature: str) -> MlflowException:
    return MlflowException(f"{feature} are not supported by the gitml store: they have no home in git yet. "
                           "Use a sqlite:/// or http:// registry for them.", error_code=NOT_IMPLEMENTED)


def _version(mv: entities.ModelVersion, aliases: bool = True) -> ModelVersion:
    return ModelVersion(
        name=mv.name, version=mv.version, creation_timestamp=mv.creation_timestamp,
        last_updated_timestamp=mv.last_updated_timestamp, description=mv.description, user_id=mv.user_id,
        current_stage=mv.current_stage, source=mv.source, run_id=mv.run_id, status="READY",
        tags=[ModelVersionTag(k, v) for k, v in mv.tags.items()], run_link=mv.run_link,
        aliases=list(mv.aliases) if aliases else [],
    )


def _model(rm: entities.RegisteredModel) -> RegisteredModel:
    return RegisteredModel(
        name=rm.name, creation_timestamp=rm.creation_timestamp, last_updated_timestamp=rm.last_updated_timestamp,
        # as MLflow's stores: a model's latest_versions carry no aliases (the model's alias map has them)
        description=rm.description, latest_versions=[_version(mv, aliases=False) for mv in rm.latest_versions],
        tags=[RegisteredModelTag(k, v) for k, v in rm.tags.items()],
        aliases=[RegisteredModelAlias(a, v) for a, v in rm.aliases.items()],
    )


def _tags(tags: Any) -> dict[str, str]:
    """MLflow passes tags as a list of ``*Tag`` entities (or, from some callers, a dict). Prompts are
    registered models with MLflow's prompt tags (through the REST server too): refused here."""
    found = {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {t.key: t.value for t in tags or []}
    if any(k.startswith(_PROMPT_TAGS) for k in found):
        raise _unsupported("Prompts")
    return found


class GitmlRegistryStore(AbstractStore):
    """MLflow's ``AbstractStore`` for ``gitml:`` registry URIs (``gitml:/abs/path``, ``gitml:.``)."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        self.store_uri = store_uri or "gitml:."
        self.tracking_uri = tracking_uri
        try:
            self.repo = GitRepo.discover(uri.repo_path(self.store_uri))
        except GitmlError as e:
            raise MlflowException(f"Cannot open the gitml registry {self.store_uri!r}: {e}",
                                  error_code=INVALID_PARAMETER_VALUE) from e
        self.root = os.fspath(self.repo.workdir or self.repo.git_dir)

    # -- registered models ---------------------------------------------------------------

    @_mlflow_errors
    def create_registered_model(self, name: str, tags: Any = None, description: str | None = None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        _validate_model_name(name)
        tags = _tags(tags)
        for k, v in tags.items():
            _validate_registered_model_tag(k, v)
        return _model(views.model_entity(registry.create_model(self.repo, name, description, tags)))

    @_mlflow_errors
    def update_registered_model(self, name: str, description: str | None,
                                deployment_job_id: str | None = None) -> RegisteredModel:
        return _model(views.model_entity(registry.update_model(self.repo, name, description)))

    @_mlflow_errors
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        _validate_model_renaming(new_name)
        return _model(views.model_entity(registry.rename_model(self.repo, name, new_name)))

    @_mlflow_errors
    def delete_registered_model(self, name: str) -> None:
        registry.delete_model(self.repo, name)

    @_mlflow_errors
    def search_registered_models(self, filter_string: str | None = None,
                                 max_results: int = SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
                                 order_by: list[str] | None = None, page_token: str | None = None) -> PagedList:
        if not isinstance(max_results, int) or max_results < 1 or max_results > SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD:
            raise MlflowException("Invalid value for request parameter max_results. It must be at most "
                                  f"{SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD}, but got value {max_results}",
                                  INVALID_PARAMETER_VALUE)
        found, token = views.search_models(self.repo, filter_string, max_results, order_by, page_token)
        return PagedList([_model(rm) for rm in found], token)

    @_mlflow_errors
    def get_registered_model(self, name: str) -> RegisteredModel:
        return _model(views.get_model(self.repo, name))

    @_mlflow_errors
    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        wanted = [get_canonical_stage(s) for s in stages] if stages else None
        return [_version(mv) for mv in views.latest_versions(self.repo, name, wanted)]

    @_mlflow_errors
    def set_registered_model_tag(self, name: str, tag: RegisteredModelTag) -> None:
        _validate_model_name(name)
        _validate_registered_model_tag(tag.key, tag.value)
        _tags([tag])
        registry.set_model_tag(self.repo, name, tag.key, tag.value)

    @_mlflow_errors
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        _validate_model_name(name)
        _validate_tag_name(key)
        registry.set_model_tag(self.repo, name, key, None)

    # -- model versions ------------------------------------------------------------------

    @_mlflow_errors
    def create_model_version(self, name: str, source: str, run_id: str | None = None, tags: Any = None,
                             run_link: str | None = None, description: str | None = None,
                             local_model_path: str | None = None, model_id: str | None = None) -> ModelVersion:
        _validate_model_name(name)
        tags = _tags(tags)
        for k, v in tags.items():
            _validate_model_version_tag(k, v)
        registry.registered(self.repo, name)  # MLflow: the model must exist first
        logged = _LOGGED_MODEL.match(str(source))
        if logged:
            source = self._logged_model_location(str(source), logged.group(1))
        model_uri, commit = self._source(str(source), run_id)
        v = registry.register_model(self.repo, model_uri, name, description=description, tags=tags,
                                    run_link=run_link, commit=commit)
        return _version(views.get_version(self.repo, name, v.number))

    def _logged_model_location(self, source: str, model_id: str) -> str:
        """Where MLflow 3's logged model ``models:/m-<id>`` keeps its files, asked of the tracking
        store (as MLflow's sqlite registry does); it must be a run's directory in this repository."""
        from mlflow.tracking import MlflowClient

        try:
            location = MlflowClient(tracking_uri=self.tracking_uri).get_logged_model(model_id).artifact_location
        except MlflowException as e:
            raise MlflowException(f"Cannot register the logged model {source!r}: its files are not found "
                                  f"({e.message}). Register the run's model as runs:/<run_id>/<path>.",
                                  error_code=NOT_IMPLEMENTED) from e
        return str(location)

    def _source(self, source: str, run_id: str | None) -> tuple[str, str | None]:
        """A version's source as gitml registers it: (``runs:/`` or ``models:/`` URI, pinned commit).

        Raises:
            InvalidValue: not a model logged in this repository.
        """
        if source.startswith(("runs:/", "models:/")):
            return source, None
        try:
            loc = uri.parse_artifact_uri(source)
        except InvalidValue:
            raise InvalidValue(
                f"Cannot register {source!r}: the gitml registry registers models logged in its repository; give "
                "the source as runs:/<run_id>/<path> or as the run's artifact URI (gitml:///repo/.gitml-runs/...)"
            ) from None
        if loc.root.startswith(uri.SCHEME + ":") and GitRepo.discover(loc.repo).common_dir != self.repo.common_dir:
            raise InvalidValue(f"Cannot register {source!r}: it is in repository {loc.repo}, not in this "
                               f"registry's ({self.root})")
        if not loc.path:
            raise InvalidValue(f"Cannot register {source!r}: it names a run, not a model directory in it")
        if run_id and run_id != loc.run_id:
            raise InvalidValue(f"Cannot register {source!r} for run {run_id}: the source is run {loc.run_id}'s")
        return f"runs:/{loc.run_id}/{loc.path}", loc.commit

    @_mlflow_errors
    def update_model_version(self, name: str, version: str | int, description: str | None) -> ModelVersion:
        number = _validate_model_version(version)
        registry.describe_version(self.repo, name, number, description)
        return self.get_model_version(name, number)

    @_mlflow_errors
    def transition_model_version_stage(self, name: str, version: str | int, stage: str,
                                       archive_existing_versions: bool) -> ModelVersion:
        canonical = get_canonical_stage(stage)
        if archive_existing_versions and canonical not in ("Staging", "Production"):
            raise MlflowException("Model version transition cannot archive existing model versions because "
                                  f"'{stage}' is not an Active stage. Valid stages are ['Staging', 'Production']")
        number = _validate_model_version(version)
        registry.transition(self.repo, name, number, canonical, bool(archive_existing_versions))
        return self.get_model_version(name, number)

    @_mlflow_errors
    def delete_model_version(self, name: str, version: str | int) -> None:
        number = _validate_model_version(version)
        registry.registered(self.repo, name).version(number)
        registry.deregister(self.repo, name, number)

    @_mlflow_errors
    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return _version(views.get_version(self.repo, name, _validate_model_version(version)))

    @_mlflow_errors
    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """The version's artifact URI, pinned to the run commit its tag names (the run may have moved on)."""
        run_id, path, commit = views.download_uri(self.repo, name, _validate_model_version(version))
        return uri.run_artifact_uri(uri.tracking_uri(self.root), run_id, commit=commit) + "/" + path

    @_mlflow_errors
    def search_model_versions(self, filter_string: str | None = None,
                              max_results: int = SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
                              order_by: list[str] | None = None, page_token: str | None = None) -> PagedList:
        if not isinstance(max_results, int) or max_results < 1:
            raise MlflowException("Invalid value for max_results. It must be a positive integer, "
                                  f"but got {max_results}", INVALID_PARAMETER_VALUE)
        if max_results > SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD:
            raise MlflowException("Invalid value for request parameter max_results. It must be at most "
                                  f"{SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD}, but got value {max_results}",
                                  INVALID_PARAMETER_VALUE)
        found, token = views.search_versions(self.repo, filter_string, max_results, order_by, page_token)
        return PagedList([_version(mv, aliases=False) for mv in found], token)  # as MLflow's sqlite store

    @_mlflow_errors
    def set_model_version_tag(self, name: str, version: str | int, tag: ModelVersionTag) -> None:
        _validate_model_name(name)
        number = _validate_model_version(version)
        _validate_model_version_tag(tag.key, tag.value)
        _tags([tag])
        registry.set_version_tag(self.repo, name, number, tag.key, tag.value)

    @_mlflow_errors
    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        _validate_model_name(name)
        number = _validate_model_version(version)
        _validate_tag_name(key)
        registry.set_version_tag(self.repo, name, number, key, None)

    @_mlflow_errors
    def copy_model_version(self, src_mv: ModelVersion, dst_name: str) -> ModelVersion:
        """A new version of ``dst_name`` (created if need be) with the source version's pinned run
        commit, model path, description, tags and run link; its source is ``models:/<src>/<n>``."""
        _validate_model_name(dst_name)
        v = registry.copy_version(self.repo, src_mv.name, _validate_model_version(src_mv.version), dst_name)
        return self.get_model_version(dst_name, v.number)

    # -- aliases (GTO stages) --------------------------------------------------------------

    @_mlflow_errors
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
        number = _validate_model_version(version)
        registry.registered(self.repo, name).version(number)
        registry.assign(self.repo, name, number, alias)

    @_mlflow_errors
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        registry.delete_alias(self.repo, name, alias)

    @_mlflow_errors
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        _validate_model_name(name)
        _validate_model_alias_name(alias)
        try:
            v = registry.alias_version(self.repo, name, alias)
        except registry.VersionNotFound as e:
            if alias.lower() == "latest":
                raise
            raise MlflowException(e.message, INVALID_PARAMETER_VALUE) from e  # MLflow's code for a missing alias
        return self.get_model_version(name, v.number)

    # -- prompts and webhooks: no git home yet ----------------------------------------------

    def search_prompts(self, filter_string: str | None = None, max_results: int | None = None,
                       order_by: list[str] | None = None, page_token: str | None = None) -> PagedList:
        return PagedList([], None)  # none can exist here; MLflow's UI lists them without an error

    def search_prompt_versions(self, name: str, max_results: int | None = None,
                               page_token: str | None = None) -> PagedList:
        raise _unsupported("Prompts")

    def list_webhooks(self, max_results: int | None = None, page_token: str | None = None) -> PagedList:
        return PagedList([], None)  # none can exist here

    def list_webhooks_by_event(self, event: Any, max_results: int | None = None,
                               page_token: str | None = None) -> PagedList:
        return PagedList([], None)  # MLflow's server asks after every registry change: nothing to deliver


def _refuse(feature: str) -> Callable[..., Any]:
    def method(self: GitmlRegistryStore, *args: Any, **kwargs: Any) -> Any:
        raise _unsupported(feature)

    method.__doc__ = f"{feature} are not supported by the gitml store (MlflowException, NOT_IMPLEMENTED)."
    return method


for _name in ("create_prompt", "delete_prompt", "set_prompt_tag", "delete_prompt_tag", "get_prompt",
              "create_prompt_version", "get_prompt_version", "delete_prompt_version", "get_prompt_version_by_alias",
              "set_prompt_alias", "delete_prompt_alias", "link_prompts_to_trace", "set_prompt_version_tag",
              "delete_prompt_version_tag", "link_prompt_version_to_model", "link_prompt_version_to_run"):
    setattr(GitmlRegistryStore, _name, _refuse("Prompts"))
for _name in ("create_webhook", "get_webhook", "update_webhook", "delete_webhook", "test_webhook"):
    setattr(GitmlRegistryStore, _name, _refuse("Webhooks"))
