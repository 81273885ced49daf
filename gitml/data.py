"""``gitml.data``: describe the datasets a run used (MLflow's ``mlflow.data``).

A dataset is recorded by its name, a digest, its source and, where they can be
worked out, a schema and a profile, exactly as MLflow stores them, so
``gitml.log_input(gitml.data.from_pandas(df), context="train")`` and
``mlflow.log_input(mlflow.data.from_pandas(df), context="train")`` record the
same digest, schema and profile for the same DataFrame::

    import gitml
    ds = gitml.data.from_pandas(df, source="data/wine.csv", name="wine")
    with gitml.start_run():
        gitml.log_input(ds, context="train")

``from_dvc("data/wine.csv")`` describes a DVC-tracked file or directory by
its ``.dvc`` file: the md5 DVC recorded is the digest, so two runs trained on
the same DVC version share a digest whatever the file is called.

The data itself is never stored; pandas and numpy are imported only by the
functions that need them.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gitml.errors import InvalidValue
from gitml.tracking.entities import Dataset

__all__ = ["Dataset", "from_dvc", "from_numpy", "from_pandas"]

#: Rows and elements hashed for a digest, as MLflow does (``mlflow/data/digest_utils.py``).
MAX_ROWS = 10000


def _md5_digest(elements: list[Any]) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    for element in elements:
        md5.update(element)
    return md5.hexdigest()[:8]


def _source(source: Any) -> tuple[str, str]:
    """(source_type, source JSON) as MLflow's dataset source registry resolves them."""
    if source is None:  # the code that built the dataset, as MLflow's CodeDatasetSource
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "<console>"
        tags = {"mlflow.user": user, "mlflow.source.name": name, "mlflow.source.type": "LOCAL"}
        return "code", json.dumps({"tags": tags})
    if hasattr(source, "to_json") and hasattr(source, "_get_source_type"):  # an MLflow DatasetSource
        return source._get_source_type(), source.to_json()
    text = os.fspath(source) if isinstance(source, os.PathLike) else source
    if not isinstance(text, str) or not text:
        raise InvalidValue(f"A dataset source must be a path or a URI, not {source!r}")
    scheme = urlparse(text).scheme
    if scheme in ("http", "https"):
        return "http", json.dumps({"url": text})
    if scheme and len(scheme) > 1:  # s3://, gs://, dbfs:/ ... (one letter: a Windows drive)
        return scheme, json.dumps({"uri": text})
    return "local", json.dumps({"uri": text})


def _dataset(name: str | None, digest: str, source: Any, schema: Any, profile: Any) -> Dataset:
    source_type, source_json = _source(source)
    return Dataset(
        name=name if name is not None else "dataset",
        digest=digest,
        source_type=source_type,
        source=source_json,
        schema=json.dumps(schema) if schema is not None else None,
        profile=json.dumps(profile) if profile is not None else None,
    )


def pandas_digest(df: Any) -> str:
    """MLflow's digest of a DataFrame: the first 10,000 rows of its string and number columns,
    its length and column names (``compute_pandas_digest``)."""
    import numpy as np
    import pandas as pd

    trimmed = df.head(MAX_ROWS)
    strings = trimmed.columns[(df.map(type) == str).all(axis=0)]
    numbers = trimmed.select_dtypes(include=[np.number]).columns
    trimmed = trimmed[strings.union(numbers)]
    return _md5_digest([pd.util.hash_pandas_object(trimmed).values, np.int64(len(df))]
                       + [str(x).encode() for x in df.columns])


def numpy_digest(features: Any, targets: Any = None) -> str:
    """MLflow's digest of arrays (or dicts of arrays): the first 10,000 elements and the shapes."""
    import numpy as np
    import pandas as pd

    elements: list[Any] = []

    def add(array: Any) -> None:
        flat = np.asarray(array).flatten()[:MAX_ROWS]
        try:
            elements.append(pd.util.hash_array(flat))
        except TypeError:
            elements.append(np.int64(flat.size))
        elements.extend(np.int64(x) for x in np.asarray(array).shape)

    for item in (features, targets):
        if item is None:
            continue
        if isinstance(item, dict):
            for key in sorted(item):
                add(item[key])
        else:
            add(item)
    return _md5_digest(elements)


def from_pandas(df: Any, source: Any = None, targets: str | None = None, name: str | None = None,
                digest: str | None = None, predictions: str | None = None) -> Dataset:
    """A pandas DataFrame as a dataset, with MLflow's digest, column schema and profile.

    ``source`` is a path or URI the data came from (default: this script).

    Raises:
        InvalidValue: ``targets`` or ``predictions`` names no column.
    """
    from gitml.models.signature import SchemaMismatch, schema_of

    for role, column in (("targets", targets), ("predictions", predictions)):
        if column is not None and column not in df.columns:
            raise InvalidValue(f"The {role} column {column!r} is not a column of the DataFrame")
    try:
        schema: Any = {"mlflow_colspec": schema_of(df).specs}
    except SchemaMismatch:  # a column type MLflow has no name for either: no schema, as in MLflow
        schema = None
    return _dataset(name, digest or pandas_digest(df), source, schema,
                    {"num_rows": len(df), "num_elements": int(df.size)})


def from_numpy(features: Any, source: Any = None, targets: Any = None, name: str | None = None,
               digest: str | None = None) -> Dataset:
    """Arrays (or dicts of arrays) as a dataset, with MLflow's digest, tensor schema and profile."""
    import numpy as np

    from gitml.models.signature import schema_of

    def attr(data: Any, what: str) -> Any:
        if isinstance(data, dict):
            return {k: attr(v, what) for k, v in data.items()}
        value = getattr(np.asarray(data), what)
        return list(value) if isinstance(value, tuple) else int(value)

    def tensor_schema(data: Any) -> str:
        if isinstance(data, dict):
            return json.dumps([{**schema_of(v).specs[0], "name": k} for k, v in data.items()])
        return schema_of(data).to_json()

    profile: dict[str, Any] = {f"features_{a}": attr(features, a) for a in ("shape", "size", "nbytes")}
    if targets is not None:
        profile.update({f"targets_{a}": attr(targets, a) for a in ("shape", "size", "nbytes")})
    schema = {"mlflow_tensorspec": {"features": tensor_schema(features),
                                    "targets": tensor_schema(targets) if targets is not None else None}}
    return _dataset(name, digest or numpy_digest(features, targets), source, schema, profile)


def from_dvc(path: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """A DVC-tracked file or directory, named by its ``.dvc`` file; the md5 DVC recorded is the digest.

    ``path`` is the data's path or its ``.dvc`` file. The source is
    ``{"path": <the data's path as the .dvc file names it>, "md5": ..., "size": ...}``
    with source type ``dvc``.

    Raises:
        InvalidValue: no ``.dvc`` file, or one without an md5 for exactly one output.
    """
    from gitml import safeyaml

    given = Path(path)
    dvc_file = given if given.suffix == ".dvc" else given.with_name(given.name + ".dvc")
    try:
        text = dvc_file.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as e:
        raise InvalidValue(f"No DVC file for {str(path)!r}: cannot read {str(dvc_file)!r} ({e})") from None
    import yaml

    try:
        data = safeyaml.load(text, str(dvc_file))
    except (yaml.YAMLError, ValueError) as e:
        raise InvalidValue(f"{str(dvc_file)!r} is not a DVC file: {e}") from None
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise InvalidValue(f"{str(dvc_file)!r} must have exactly one entry under 'outs'")
    out = outs[0]
    md5 = out.get("md5")
    if not isinstance(md5, str) or not 32 <= len(md5) <= 36:
        raise InvalidValue(f"{str(dvc_file)!r} records no md5 for {out.get('path')!r} (run `dvc add` first)")
    rel = str(out.get("path") or given.name.removesuffix(".dvc"))
    source = {"path": str(dvc_file.parent / rel), "md5": md5}
    profile: dict[str, Any] = {}
    for key in ("size", "nfiles"):
        if isinstance(out.get(key), int):
            profile[key] = out[key]
            source[key] = out[key]
    return Dataset(
        name=name if name is not None else Path(rel).name,
        digest=md5,
        source_type="dvc",
        source=json.dumps(source),
        schema=None,
        profile=json.dumps(profile) if profile else None,
    )
