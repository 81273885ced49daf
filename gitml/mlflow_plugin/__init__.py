"""gitml as MLflow's store plugin: unmodified ``import mlflow`` code writes into a git repository.

With ``MLFLOW_TRACKING_URI=gitml:<repo>`` (and ``pip install gitml[mlflow]``),
MLflow finds these through its documented entry points (``pyproject.toml``):

- ``mlflow.tracking_store``: ``tracking_store.GitmlTrackingStore``;
- ``mlflow.model_registry_store``: ``registry_store.GitmlRegistryStore``;
- ``mlflow.artifact_repository``: ``artifact_repo.GitmlArtifactRepository``.

Each is a thin shell over gitml's own domain functions, so a run logged
through MLflow is the same refs, notes, tags and DVC-layout artifacts as
one logged with ``import gitml``. Only these modules import mlflow;
the ``gitml:`` URI grammar they share with
``gitml run`` lives in the tracking layer (``gitml/tracking/uri.py``), and ``import gitml``
loads none of them.
"""
