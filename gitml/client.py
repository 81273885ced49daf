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

    # -- registered models --------------------------------------------------------------

    def create_registered_model(self, name: str, **_: Any) -> Any:
        """Check the name; a model exists in git once its first version is registered."""
        from gitml.registry.entities import RegisteredModel
        from gitml.registry.tags import check_model_name

        return RegisteredModel(check_model_name(name), 0, 0, "", [], {}, False)

    def get_registered_model(self, name: str) -> Any:
        from gitml import registry
        from gitml.registry.entities import RegisteredModel

        return RegisteredModel.of(registry.get_model(self.repo, name))

    def search_registered_models(self, filter_string: str | None = None, **_: Any) -> list[Any]:
        """Models whose name matches ``name = '...'`` / ``name LIKE '...'`` (all without a filter)."""
        from gitml import registry
        from gitml.registry.entities import ModelVersion, RegisteredModel, matches, parse_version_filter

        clauses = parse_version_filter(filter_string)
        models = registry.load(self.repo)
        return [RegisteredModel.of(m) for name, m in sorted(models.items())
                if not clauses or any(matches(ModelVersion.of(v), clauses) for v in m.versions)
                or (not m.versions and all(k == "name" for k, _, _ in clauses))]

    def delete_registered_model(self, name: str) -> None:
        """Deprecate the model (``<name>@deprecated``); its tags and history stay."""
        from gitml import registry

        registry.deprecate(self.repo, name)

    # -- model versions -----------------------------------------------------------------

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             description: str | None = None, **_: Any) -> Any:
        """Register ``source`` (``runs:/<run_id>/<path>``, or an artifact path of ``run_id``)."""
        from gitml import registry
        from gitml.registry.entities import ModelVersion

        uri = source if source.startswith("runs:/") or not run_id else f"runs:/{run_id}/{source.strip('/')}"
        return ModelVersion.of(registry.register_model(self.repo, uri, name, description=description))

    def get_model_version(self, name: str, version: str | int) -> Any:
        from gitml import registry
        from gitml.registry.entities import ModelVersion

        repo = self.repo
        v = registry.find_version(registry.get_model(repo, name), version)
        return ModelVersion.of(v, registry.comments(repo, [v]).get(v.tag, []))

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[Any]:
        """The version in each stage (or in ``stages``); ``"None"`` is the latest version in no stage."""
        from gitml import registry
        from gitml.registry.entities import latest_versions

        return latest_versions(registry.get_model(self.repo, name), stages)

    def search_model_versions(self, filter_string: str | None = None, max_results: int | None = None,
                              **_: Any) -> list[Any]:
        """Versions matching e.g. ``name='rf'``, ``run_id IN ('a','b')``, ``stage='production'``; newest first."""
        from gitml import registry
        from gitml.registry.entities import ModelVersion, matches, parse_version_filter

        clauses = parse_version_filter(filter_string)
        found = [ModelVersion.of(v) for m in registry.load(self.repo).values() for v in m.versions]
        found = [mv for mv in found if matches(mv, clauses)]
        found.sort(key=lambda mv: (mv.name, -int(mv.version)))
        return found[:max_results] if max_results else found

    def transition_model_version_stage(self, name: str, version: str | int, stage: str,
                                       archive_existing_versions: bool = False) -> Any:
        """Move ``stage`` to this version. ``stage="None"`` takes the version out of every stage.

        ``archive_existing_versions=True`` puts the version that held the stage into ``archived``.
        """
        from gitml import registry

        repo = self.repo
        if str(stage).lower() == "none":
            v = registry.find_version(registry.get_model(repo, name), version)
            for held in list(v.stages):
                registry.unassign(repo, name, version, held)
        else:
            model = registry.get_model(repo, name)
            before = model.stages.get(model.stage_name(stage))  # stages match case-insensitively
            v, written = registry.assign(repo, name, version, stage)
            if archive_existing_versions and written and before is not None and before.version != v.version:
                registry.assign(repo, name, before.version, "archived")
        return self.get_model_version(name, version)

    def delete_model_version(self, name: str, version: str | int) -> None:
        """Deregister the version (``<name>@<semver>!``); its tag and history stay."""
        from gitml import registry

        registry.deregister(self.repo, name, version)

    def update_model_version(self, name: str, version: str | int, description: str | None = None) -> Any:
        """Add ``description`` as a comment (a tag message cannot change; comments live in git notes)."""
        from gitml import registry

        if description:
            registry.comment(self.repo, name, version, description)
        return self.get_model_version(name, version)

    # -- aliases (GTO stages) ------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        from gitml import registry

        registry.assign(self.repo, name, version, alias)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        from gitml import registry

        repo = self.repo
        holder = registry.resolve(repo, f"{name}@{alias}")
        registry.unassign(repo, name, holder.version, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        from gitml import registry
        from gitml.registry.entities import ModelVersion

        return ModelVersion.of(registry.resolve(self.repo, f"{name}@{alias}"))


MlflowClient = Client


def register_model(model_uri: str, name: str, *, tags: dict[str, Any] | None = None,
                   description: str | None = None, version: str | None = None, **_: Any) -> Any:
    """MLflow's ``mlflow.register_model``: tag the run's commit as the next version of ``name``.

    ``model_uri`` is ``runs:/<run_id>/<path>``; ``version`` (``v1.2.0``)
    overrides the automatic patch bump. Returns a ``ModelVersion``.
    """
    from gitml import registry
    from gitml.registry.entities import ModelVersion
    from gitml.tracking import fluent

    v = registry.register_model(fluent._repo(), model_uri, name, version=version, description=description)
    return ModelVersion.of(v)
