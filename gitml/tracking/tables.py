"""Tables as run artifacts, in MLflow's format (``mlflow.log_table`` / ``mlflow.load_table``).

A table is a pandas DataFrame (or a dict of columns) stored as the JSON of
``DataFrame.to_json(orient="split", index=False, date_format="iso")``, or as
Parquet for a ``.parquet`` file. Logging to a file the run already has
appends the rows, and the run's ``mlflow.loggedArtifacts`` tag lists the
file as ``{"path": ..., "type": "table"}``: the same bytes and tag MLflow
writes, so either tool reads the other's tables. Image columns (PIL images)
are not supported.
"""

from __future__ import annotations

import io
import json
import posixpath
from typing import TYPE_CHECKING, Any

from gitml.errors import InvalidValue
from gitml.store.repo import GitRepo
from gitml.tracking import artifacts
from gitml.tracking.writer import RunWriter

if TYPE_CHECKING:
    import pandas

LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"


class TableNotFound(artifacts.ArtifactNotFound):
    """A run named in ``load_table`` has no such table."""


def _check_file(artifact_file: str) -> str:
    if not isinstance(artifact_file, str) or not artifact_file.endswith((".json", ".parquet")):
        raise InvalidValue(f"Invalid table file {artifact_file!r}: a table is logged to a .json or .parquet file")
    return posixpath.normpath(artifact_file)


def _frame(data: pandas.DataFrame | dict[str, Any]) -> pandas.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if not isinstance(data, dict):
        raise InvalidValue(f"log_table takes a pandas DataFrame or a dict of columns, not {type(data).__name__}")
    try:
        return pd.DataFrame(data)
    except ValueError:  # all scalars ({"inputs": "What is MLflow?"}): one row, as MLflow does
        return pd.DataFrame([data])


def _read(raw: bytes, artifact_file: str) -> pandas.DataFrame:
    import pandas as pd

    if artifact_file.endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(raw))
    return pd.read_json(io.StringIO(raw.decode("utf-8")), orient="split")


def _encode(frame: pandas.DataFrame, artifact_file: str) -> bytes:
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(lambda v: hasattr(v, "resize") and hasattr(v, "save")).any():
            raise InvalidValue(f"log_table column {column!r} holds images, which gitml's tables do not store; "
                               "log them with log_image")
    if artifact_file.endswith(".parquet"):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    try:
        text: str = frame.to_json(orient="split", index=False, date_format="iso")
        return text.encode("utf-8")
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidValue(f"log_table cannot store this table as JSON: {e}") from e


def log_table(repo: GitRepo, writer: RunWriter, data: pandas.DataFrame | dict[str, Any], artifact_file: str) -> str:
    """Store ``data`` as the table ``artifact_file`` of the writer's run, after the rows it already has.

    Raises:
        InvalidValue: not a .json/.parquet file, not a DataFrame or dict, or not storable.
    """
    import pandas as pd

    path = _check_file(artifact_file)
    frame = _frame(data)
    writer.flush()  # the table logged a moment ago is then in the run's manifest
    entry = artifacts.manifest(repo, writer.run_id).get(path)
    if entry is not None:
        existing = _read(artifacts.read_artifact(repo, writer.run_id, path), path)
        frame = pd.concat([existing, frame], ignore_index=True)
    stored = artifacts.log_bytes(repo, writer, _encode(frame, path), path)
    state = writer.state()
    try:
        listed = json.loads(state.tags.get(LOGGED_ARTIFACTS_TAG, "[]"))
    except json.JSONDecodeError:
        listed = []
    mark = {"path": path, "type": "table"}
    if isinstance(listed, list) and mark not in listed:
        writer.set_tag(LOGGED_ARTIFACTS_TAG, json.dumps([*listed, mark]))
    return stored


def load_table(repo: GitRepo, run_ids: list[str], artifact_file: str,
               extra_columns: list[str] | None = None) -> pandas.DataFrame:
    """The rows of table ``artifact_file`` from each run in ``run_ids``, one DataFrame.

    ``extra_columns`` adds run fields (``run_id``, ``experiment_id``... any
    column of ``search_runs``' DataFrame) to each row; a name the table has
    already gets a trailing ``_``, as in MLflow.

    Raises:
        InvalidValue (not a table file), TableNotFound (a run without it).
    """
    import pandas as pd

    from gitml.tracking import runs

    path = _check_file(artifact_file)
    frames = []
    for run_id in run_ids:
        run = runs.get_run(repo, run_id)
        if path not in artifacts.manifest(repo, run.info.run_id, run.commit):
            raise TableNotFound(f"Table {artifact_file!r} not found in run {run.info.run_id}")
        frame = _read(artifacts.read_artifact(repo, run.info.run_id, path), path)
        if extra_columns:
            row = runs.runs_to_dataframe([run]).iloc[0]
            for column in extra_columns:
                if column not in row.index:
                    raise InvalidValue(f"Unknown extra column {column!r}; use a column of search_runs, "
                                       "e.g. run_id")
                frame[f"{column}_" if column in frame.columns else column] = row[column]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def runs_with_table(repo: GitRepo, experiment_ids: list[str], artifact_file: str) -> list[str]:
    """The runs (in the experiments) whose ``mlflow.loggedArtifacts`` tag lists the table."""
    from gitml.tracking import runs

    path = _check_file(artifact_file)
    found = runs.search_runs(repo, experiment_ids, f"tags.`{LOGGED_ARTIFACTS_TAG}` LIKE '%\"path\": \"{path}\"%'",
                             1, 100000, None)
    return [r.info.run_id for r in found
            if {"path": path, "type": "table"} in _listed(r.data.tags.get(LOGGED_ARTIFACTS_TAG))]


def _listed(value: str | None) -> list[object]:
    try:
        listed = json.loads(value or "[]")
    except json.JSONDecodeError:
        return []
    return listed if isinstance(listed, list) else []
