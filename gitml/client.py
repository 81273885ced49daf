"""``gitml.Client``: MLflow's ``MlflowClient``, tracking and model registry, over a git repository."""

from __future__ import annotations

from typing import Any

from gitml.tracking.client import Client as TrackingClient


class Client(TrackingClient):
    """Tracking (runs, experiments, artifacts) and registry (model versions, stages) calls.

    Registry calls take a version as MLflow's number (``3``) or as the
    tag's semver (``v1.2.0``). Stages are GTO stages: one version holds a
    stage at a time, and moving a stage to a version unassigns the last one.
    """

    def get_logged_model(self, model_id: str) -> Any:
        """MLflow 3's logged model ``model_id`` (``m-...``): a model directory of a run's artifacts."""
        from gitml.models.logged import read_logged_model

        return read_logged_model(self.repo, model_id)

    # -- registered models --------------------------------------------------------------

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None,
                                description: str | None = None, **_: Any) -> Any:
        """Create a model with no version yet (its description and tags go in the registry's metadata log).

        Raises ``ModelExists`` (``RESOURCE_ALREADY_EXISTS``) if a model of that name exists.
        """
        from gitml import registry
        from gitml.registry.views import model_entity

        tags = {k: str(v) for k, v in (tags or {}).items()}
        return model_entity(registry.create_model(self.repo, name, description, tags))

    def get_registered_model(self, name: str) -> Any:
        from gitml.registry.views import get_model

        return get_model(self.repo, name)

    def update_registered_model(self, name: str, description: str | None = None, **_: Any) -> Any:
        from gitml import registry
        from gitml.registry.views import model_entity

        return model_entity(registry.update_model(self.repo, name, description))

    def rename_registered_model(self, name: str, new_name: str) -> Any:
        """Rename the model: its tags are written again under the new name, the old name is deprecated."""
        from gitml import registry
        from gitml.registry.views import model_entity

        return model_entity(registry.rename_model(self.repo, name, new_name))

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        from gitml import registry

        registry.set_model_tag(self.repo, name, key, str(value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        from gitml import registry

        registry.set_model_tag(self.repo, name, key, None)

    def search_registered_models(self, filter_string: str | None = None, max_results: int | None = None,
                                 order_by: list[str] | None = None, page_token: str | None = None) -> list[Any]:
        """Models matching MLflow's filter grammar (``name``, ``tags.<key>``), ordered by name by default."""
        from gitml.registry.views import search_models

        return _Page(*search_models(self.repo, filter_string, max_results, order_by, page_token))

    def delete_registered_model(self, name: str) -> None:
        """Delete the model as MLflow does: every version deregistered, the model deprecated, its
        metadata cleared. The tags stay (history); the name can be created again."""
        from gitml import registry

        registry.delete_model(self.repo, name)

    # -- model versions -----------------------------------------------------------------

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, run_link: str | None = None,
                             description: str | None = None, **_: Any) -> Any:
        """Register ``source`` (``runs:/<run_id>/<path>``, ``models:/<name>/<version>``, or an
        artifact path of ``run_id``). The same run registered twice makes two versions, as in MLflow."""
        from gitml import registry
        from gitml.registry.views import get_version

        uri = source if source.startswith(("runs:/", "models:/")) or not run_id else f"runs:/{run_id}/{source.strip('/')}"
        v = registry.register_model(self.repo, uri, name, description=description, run_link=run_link,
                                    tags={k: str(val) for k, val in (tags or {}).items()})
        return get_version(self.repo, name, v.number)

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> Any:
        """A new version of ``dst_name`` (created if need be) with the source version's run, files,
        description and tags; ``src_model_uri`` is ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
        from gitml import registry
        from gitml.errors import InvalidValue
        from gitml.registry.views import get_version

        spec = str(src_model_uri)
        if not spec.startswith("models:/"):
            raise InvalidValue(f"Invalid source {spec!r}: use models:/<name>/<version> or models:/<name>@<alias>")
        src = registry.resolve(self.repo, spec[len("models:/") :])
        v = registry.copy_version(self.repo, src.model, src.number, dst_name)
        return get_version(self.repo, dst_name, v.number)

    def get_model_version(self, name: str, version: str | int) -> Any:
        """A version by number or semver (deregistered ones too, with ``status="DEREGISTERED"``)."""
        from gitml import registry
        from gitml.registry.views import version_entity

        repo = self.repo
        model = registry.registered(repo, name)
        if model.state is None:
            raise registry.VersionNotFound(f"Model Version (name={name}, version={version}) not found")
        v = registry.find_version(model.state, version)
        return version_entity(model, v, registry.comments(repo, [v]).get(v.tag, []))

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """``models:/<name>/<number>``: gitml's loaders read the version's pinned run commit from it."""
        from gitml.registry.views import get_version

        return f"models:/{name}/{get_version(self.repo, name, version).version}"

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[Any]:
        """The highest version in each MLflow stage (or in ``stages``); ``"None"`` is for versions in none."""
        from gitml.registry.views import latest_versions

        return latest_versions(self.repo, name, stages)

    def search_model_versions(self, filter_string: str | None = None, max_results: int | None = None,
                              order_by: list[str] | None = None, page_token: str | None = None) -> list[Any]:
        """Versions matching e.g. ``name='rf'``, ``run_id IN ('a','b')``, ``tags.k = 'v'``,
        ``stage='production'``; MLflow's order by default (last updated first)."""
        from gitml.registry.views import search_versions

        return _Page(*search_versions(self.repo, filter_string, max_results, order_by, page_token))

    def transition_model_version_stage(self, name: str, version: str | int, stage: str,
                                       archive_existing_versions: bool = False) -> Any:
        """Move the version to MLflow stage ``stage`` (it leaves its other MLflow stage); ``"None"``
        takes it out of MLflow's stages. Any other name is a GTO stage, assigned as ``promote`` does.

        ``archive_existing_versions=True`` puts the version that held the stage into ``archived``.
        """
        from gitml import registry

        registry.transition(self.repo, name, version, stage, archive_existing_versions)
        return self.get_model_version(name, version)

    def delete_model_version(self, name: str, version: str | int) -> None:
        """Deregister the version (``<name>@<semver>!``); its tag and history stay."""
        from gitml import registry

        registry.deregister(self.repo, name, version)

    def update_model_version(self, name: str, version: str | int, description: str | None = None) -> Any:
        """Set the version's description (a metadata event; the tag message keeps the first one)."""
        from gitml import registry

        registry.describe_version(self.repo, name, version, description)
        return self.get_model_version(name, version)

    def set_model_version_tag(self, name: str, version: str | int | None = None, key: str | None = None,
                              value: Any = None, stage: str | None = None) -> None:
        from gitml import registry

        if version is None and stage is not None:
            version = registry.resolve(self.repo, f"{name}/{stage}").number
        registry.set_version_tag(self.repo, name, version, key, str(value))  # type: ignore[arg-type]

    def delete_model_version_tag(self, name: str, version: str | int | None = None, key: str | None = None,
                                 stage: str | None = None) -> None:
        from gitml import registry

        if version is None and stage is not None:
            version = registry.resolve(self.repo, f"{name}/{stage}").number
        registry.set_version_tag(self.repo, name, version, key, None)  # type: ignore[arg-type]

    # -- aliases (GTO stages) ------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` at the version: a GTO stage tag (one holder; the previous one is unassigned)."""
        from gitml import registry

        registry.assign(self.repo, name, version, alias)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        from gitml import registry

        registry.delete_alias(self.repo, name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        from gitml import registry
        from gitml.registry.views import version_entity

        repo = self.repo
        return version_entity(registry.registered(repo, name), registry.alias_version(repo, name, alias))


class _Page(list):  # type: ignore[type-arg]
    """A list of results with MLflow's ``PagedList.token`` (the next page's token, or None)."""

    def __init__(self, items: list[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token


MlflowClient = Client


def register_model(model_uri: str, name: str, *, tags: dict[str, Any] | None = None,
                   description: str | None = None, version: str | None = None, **_: Any) -> Any:
    """MLflow's ``mlflow.register_model``: tag the run's commit as the next version of ``name``.

    ``model_uri`` is ``runs:/<run_id>/<path>``; ``version`` (``v1.2.0``)
    overrides the automatic patch bump. Returns a ``ModelVersion``.
    """
    from gitml import registry
    from gitml.registry.entities import ModelVersion
    from gitml.tracking import runs

    v = registry.register_model(runs.open_repo(), model_uri, name, version=version, description=description,
                                tags={k: str(val) for k, val in (tags or {}).items()})
    return ModelVersion.of(v)
