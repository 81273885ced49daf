"""``GitmlArtifactRepository``: MLflow's artifact repository for ``gitml:`` artifact URIs.

A run's artifact URI is ``gitml:///abs/repo/.gitml-runs/<run_id>[@<commit>]``
(``gitml/tracking/uri.py``); MLflow appends artifact paths to it. Files go into the
repository's DVC-layout content store and are recorded in the run's
``artifacts.json``, through the same functions ``gitml.log_artifact`` uses,
so the two are indistinguishable. Reads check every hash. A URI pinned to a
commit (``@<commit>``: a registered version's run commit) reads that
commit's manifest and refuses writes.

``mlflow server --artifacts-destination gitml:///abs/repo`` builds one
repository for the destination root and names artifacts by their path under
it (``.gitml-runs/<run_id>/model/MLmodel``), so a repository built on a root
URI finds the run in the path.

Listed from a run's root, the directories of MLflow 3 logged models are left
out, as MLflow 3 shows them: MLflow lists a logged model's files through the
model (``runs:/<id>/model`` adds them), and in gitml they are the run's own
files, so listing them here too would show each twice. Downloads, pinned
URIs and URIs naming the model directory are unaffected.

Artifacts are never deleted: a run's artifacts are part of its history in
git (``delete_artifacts`` refuses, naming why).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from gitml.errors import InvalidValue
from gitml.mlflow_plugin import convert
from gitml.tracking import uri
from gitml.tracking import artifacts, logged_models, runs
from gitml.tracking.entities import ViewType
from gitml.tracking.schema import ArtifactEntry
from gitml.tracking.validation import validate_artifact_path

if TYPE_CHECKING:
    from gitml.tracking.writer import RunWriter


@convert.translated
class GitmlArtifactRepository(ArtifactRepository):
    """Artifacts of gitml runs, in the repository's content store."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        with convert.errors():
            try:
                loc = uri.parse_artifact_uri(artifact_uri)
            except InvalidValue:  # a root (mlflow server's --artifacts-destination): runs are in the paths
                self._run_id, self._commit, self._base = None, None, ""
                self.repo = runs.open_repo(uri.repo_path(artifact_uri))
            else:
                self._run_id, self._commit = loc.run_id, loc.commit
                self._base = validate_artifact_path(loc.path)
                self.repo = runs.open_repo(loc.repo)
        self.write_through = convert.write_through()

    # -- where a path points ------------------------------------------------------------------------

    def _locate(self, path: str | None) -> tuple[str | None, str | None, str, str]:
        """(run id, pinned commit, path inside the run, the prefix that path had in our namespace).

        ``run id`` is None for the root and ``.gitml-runs`` of a root repository.
        """
        rel = validate_artifact_path(path)
        if self._run_id is not None:
            return self._run_id, self._commit, posixpath.join(self._base, rel) if rel else self._base, ""
        parts = rel.split("/") if rel else []
        if not parts or parts[0] != uri.RUNS_SEGMENT or len(parts) == 1:
            return None, None, rel, ""
        loc = uri.parse_artifact_uri(f"gitml:/{rel}")
        prefix = "/".join(parts[:2])
        return loc.run_id, loc.commit, validate_artifact_path(loc.path), prefix

    def _writer(self, path: str | None) -> tuple[RunWriter, str]:
        run_id, commit, inside, _ = self._locate(path)
        if run_id is None:
            raise MlflowException(f"{self.artifact_uri}/{path or ''}: artifacts belong to a run "
                                  f"({uri.RUNS_SEGMENT}/<run_id>/...)", INVALID_PARAMETER_VALUE)
        if commit is not None:
            raise MlflowException(f"{self.artifact_uri} is pinned to run commit {commit[:12]} and is read-only",
                                  INVALID_PARAMETER_VALUE)
        return runs.writer_for_existing(self.repo, run_id), inside

    def _committed(self, w: RunWriter) -> None:
        # In `mlflow server` the next request (a listing, the run's end) may reach the other worker:
        # the artifact's record is committed before the answer, as the tracking store's writes are.
        if self.write_through:
            w.flush()

    # -- writing ------------------------------------------------------------------------------------

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        w, inside = self._writer(artifact_path)
        artifacts.log_artifact(self.repo, w, local_file, inside or None)
        self._committed(w)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        w, inside = self._writer(artifact_path)
        artifacts.log_artifacts(self.repo, w, local_dir, inside or None)
        self._committed(w)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        raise MlflowException(
            "Deleting artifacts is not supported by the gitml store: a run's artifacts are part of its history in "
            "git (delete the run instead; `gitml gc` removes objects no run names)", INVALID_PARAMETER_VALUE)

    # -- reading ------------------------------------------------------------------------------------

    def _manifest(self, run_id: str, commit: str | None) -> dict[str, ArtifactEntry]:
        files = artifacts.manifest(self.repo, run_id, commit)
        return {p: e for p, e in files.items() if not p.endswith("/")}

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """Files and directories directly under ``path``; [] for a file, as MLflow's repositories answer."""
        run_id, commit, inside, prefix = self._locate(path)
        if run_id is None:
            return self._list_root(inside)
        files = self._manifest(run_id, commit)
        if inside in files:
            return []
        if commit is None and not self._base:  # the run's root: logged models are listed through the model
            run = runs.get_run(self.repo, run_id)
            hidden = {m.name for m in logged_models.of_run(run.data.tags, run_id, run.info.experiment_id)}
            files = {p: e for p, e in files.items()
                     if not any(p == h or p.startswith(h + "/") for h in hidden)}
        base = inside + "/" if inside else ""
        out: dict[str, FileInfo] = {}
        for p, entry in files.items():
            if not p.startswith(base):
                continue
            head, sep, _ = p[len(base):].partition("/")
            child = base + head
            if sep:
                out.setdefault(child, FileInfo(child, True, None))
            else:
                out[child] = FileInfo(child, False, entry["size"])
        own = len(self._base) + 1 if self._base else 0  # our paths are relative to our URI
        shown = (prefix + "/") if prefix else ""
        return [FileInfo(shown + f.path[own:], f.is_dir, f.file_size) for _, f in sorted(out.items())]

    def _list_root(self, rel: str) -> list[FileInfo]:
        if not rel:
            return [FileInfo(uri.RUNS_SEGMENT, True, None)]
        if rel == uri.RUNS_SEGMENT:
            ids = runs.search_runs(self.repo, None, None, ViewType.ALL)
            return [FileInfo(f"{uri.RUNS_SEGMENT}/{r.info.run_id}", True, None) for r in ids]
        return []

    def _is_directory(self, artifact_path: str) -> bool:
        return bool(self.list_artifacts(artifact_path))

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        run_id, commit, inside, _ = self._locate(remote_file_path)
        entry = self._manifest(run_id, commit).get(inside) if run_id is not None else None
        if entry is None:
            raise MlflowException(f"No artifact {remote_file_path!r} in {self.artifact_uri}", RESOURCE_DOES_NOT_EXIST)
        artifacts.content_store(self.repo).checkout(entry["md5"], local_path)  # hash checked before it lands

    def get_local_path(self, artifact_path: str) -> str | None:
        return None  # the content store's files are read-only objects named by hash; copy them out
