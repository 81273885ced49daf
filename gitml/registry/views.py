"""MLflow's view of the registry: entities and searches, shared by ``gitml.Client`` and the MLflow store.

Searches take the grammar of ``gitml.tracking.filters`` (its ``REGISTERED_MODELS`` and
``MODEL_VERSIONS`` field tables) and MLflow's page tokens (base64 of ``{"offset": n}``).

MLflow does not see what it would have deleted: deregistered versions, and deprecated
models (unless created again since). ``gitml models ...`` shows those too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from gitml import registry
from gitml.errors import InvalidFilter
from gitml.registry.entities import ModelVersion, RegisteredModel, matches_model, matches_version
from gitml.registry.state import VersionState
from gitml.store.repo import GitRepo
from gitml.tracking import filters


def model_entity(model: registry.Registered) -> RegisteredModel:
    return RegisteredModel.of(model.state, model.meta, name=model.name)


def version_entity(model: registry.Registered, v: VersionState, comments: list[Any] | None = None) -> ModelVersion:
    return ModelVersion.of(v, comments, model.meta.version(v.version), name=model.name)


def get_model(repo: GitRepo, name: str) -> RegisteredModel:
    """Raises: ModelNotRegistered, InvalidName"""
    return model_entity(registry.registered(repo, name))


def get_version(repo: GitRepo, name: str, version: str | int, *, with_comments: bool = False) -> ModelVersion:
    """An active version of an existing model.

    Raises:
        ModelNotRegistered, VersionNotFound, InvalidName
    """
    model = registry.registered(repo, name)
    v = model.version(version)
    notes = registry.comments(repo, [v]).get(v.tag, []) if with_comments else None
    return version_entity(model, v, notes)


def latest_versions(repo: GitRepo, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
    """Raises: ModelNotRegistered"""
    from gitml.registry.entities import latest_versions as latest

    model = registry.registered(repo, name)
    if model.state is None:
        return []
    return latest(model.state, list(stages) if stages else None, model.meta)


#: MLflow marks prompts (registered models it stores prompts in) with this tag.
PROMPT_TAG = "mlflow.prompt.is_prompt"


def _prompts(clauses: list[filters.Comparison]) -> tuple[list[filters.Comparison], bool]:
    """MLflow's rule for the prompt tag: searches leave prompts out unless the filter asks for them
    (``tags.`mlflow.prompt.is_prompt` = 'true'``); MLflow's client adds ``!= 'true'`` to every search."""
    wanted = False
    rest = []
    for c in clauses:
        if c.kind == filters.TAG and c.key == PROMPT_TAG:
            value = str(c.value).lower()
            wanted = wanted or (c.op == "=" and value == "true") or (c.op == "!=" and value == "false")
        else:
            rest.append(c)
    return rest, wanted


def _is_prompt(tags: dict[str, str]) -> bool:
    return tags.get(PROMPT_TAG, "false").lower() == "true"


def _field(entity: Any, key: str) -> Any:
    if key == "version_number":
        return int(entity.version)
    return getattr(entity, key)


def search_models(repo: GitRepo, filter_string: str | None = None, max_results: int | None = None,
                  order_by: Sequence[str] | None = None,
                  page_token: str | bytes | None = None) -> tuple[list[RegisteredModel], str | None]:
    """MLflow's ``search_registered_models``: one page and the next page's token.

    Raises:
        InvalidFilter
    """
    clauses, prompts = _prompts(filters.parse_filter(filter_string, filters.REGISTERED_MODELS))
    order = filters.parse_order_by(order_by, filters.REGISTERED_MODELS)  # then by name
    found = [rm for rm in (model_entity(m) for m in registry.registered_models(repo))
             if matches_model(rm, clauses) and _is_prompt(rm.tags) == prompts]
    return page(filters.sort_records(found, order, _field), max_results, page_token)


def search_versions(repo: GitRepo, filter_string: str | None = None, max_results: int | None = None,
                    order_by: Sequence[str] | None = None,
                    page_token: str | bytes | None = None) -> tuple[list[ModelVersion], str | None]:
    """MLflow's ``search_model_versions`` (active versions of existing models): one page and the
    next page's token. The default order is MLflow's: last updated first, then name, then number
    descending.

    Raises:
        InvalidFilter
    """
    clauses, prompts = _prompts(filters.parse_filter(filter_string, filters.MODEL_VERSIONS))
    order = filters.parse_order_by(order_by, filters.MODEL_VERSIONS)  # then by name, number descending
    found = [mv for m in registry.registered_models(repo) for mv in (version_entity(m, v) for v in m.versions())
             if matches_version(mv, clauses) and _is_prompt(mv.tags) == prompts]
    return page(filters.sort_records(found, order, _field), max_results, page_token)


# -- pages ---------------------------------------------------------------------------------------


def page_token(offset: int) -> str:
    """MLflow's page token: base64 of ``{"offset": n}``."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def parse_page_token(token: str | bytes | None) -> int:
    """The offset a page token holds (0 without one).

    Raises:
        InvalidFilter: the token is not one ``page_token`` made.
    """
    if not token:
        return 0
    try:
        data = json.loads(base64.b64decode(token, validate=True))
        offset = data["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise InvalidFilter(f"Invalid page token {str(token)[:60]!r}") from None
    if type(offset) is not int or offset < 0:
        raise InvalidFilter(f"Invalid page token {str(token)[:60]!r}: bad offset")
    return offset


def page(items: list[Any], max_results: int | None, token: str | bytes | None) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the token of the next (None on the last page)."""
    start = parse_page_token(token)
    if max_results is None:
        return items[start:], None
    end = start + max_results
    return items[start:end], (page_token(end) if end < len(items) else None)


def download_uri(repo: GitRepo, name: str, version: str | int) -> tuple[str, str, str]:
    """(run id, model path, pinned commit) of an active version, for a download URI.

    Raises:
        ModelNotRegistered, VersionNotFound, RegistryConflict (not a model gitml registered)
    """
    v = registry.registered(repo, name).version(version)
    if v.run_id is None or v.path is None:
        raise registry.RegistryConflict(f"{name} {v.version} was not registered from a run (no Gitml-Run trailer), "
                                        "so it has no artifact URI")
    return v.run_id, v.path, v.commit
