"""MLflow's scoring protocol: request bodies in, ``{"predictions": ...}`` out.

The accepted payloads are those of ``mlflow models serve`` (MLflow 2 and 3):

- ``application/json`` with exactly one of ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs``, and optionally
  ``params``;
- ``text/csv`` (a header row, then rows);
- ``application/vnd.apache.parquet`` (needs pyarrow).

Predictions are made JSON-able the way MLflow does it: a DataFrame becomes
a list of records, a Series a list of one-key records, an ndarray a (nested)
list, numpy scalars plain numbers. Errors are ``ScoringError`` with MLflow's
JSON shape ``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from typing import Any

from gitml.errors import GitmlError

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = (CONTENT_TYPE_JSON, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET)
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_REQUIRED = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)


class ScoringError(GitmlError):
    """A request the scoring server refuses (4xx), with MLflow's error JSON."""

    def __init__(self, message: str, status: int = 400, error_code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.http_status = status
        self.error_code = error_code

    def body(self) -> bytes:
        return json.dumps({"error_code": self.error_code, "message": self.message}).encode()


def parse_request(body: bytes, content_type: str | None, signature: Any = None) -> tuple[Any, dict[str, Any] | None]:
    """(model input, params) from a request body, as MLflow's scoring server parses it.

    Raises:
        ScoringError: 415 for a content type or charset it does not take,
        400 for a body that does not parse or has the wrong shape.
    """
    mime, options = _content_type(content_type)
    inputs = getattr(signature, "inputs", None)
    if mime == CONTENT_TYPE_JSON:
        return _parse_json(body, inputs)
    if mime == CONTENT_TYPE_CSV:
        return _parse_csv(body, inputs), None
    if mime == CONTENT_TYPE_PARQUET:
        return _parse_parquet(body), None
    raise ScoringError(
        f"This predictor only supports the following content types: {list(CONTENT_TYPES)}. Got {content_type!r}.",
        415,
    )


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in (value or "").split(";")]
    options = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parts[1:] if p)}
    if options.get("charset", "utf-8").lower() != "utf-8":
        raise ScoringError(f"The scoring server only supports UTF-8, got charset={options['charset']!r}", 415)
    unknown = sorted(set(options) - {"charset"})
    if unknown:
        raise ScoringError(f"Unrecognized content type parameters: {', '.join(unknown)}", 415)
    return parts[0].lower(), options


def _parse_json(body: bytes, schema: Any) -> tuple[Any, dict[str, Any] | None]:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ScoringError(f"Ensure that input is a valid JSON formatted string. Error: {e}") from None
    if not isinstance(obj, dict):
        raise ScoringError(f"{_REQUIRED}. Received {'a list' if isinstance(obj, list) else type(obj).__name__}.")
    keys = [k for k in INPUT_KEYS if k in obj]
    if len(keys) != 1:
        raise ScoringError(f"{_REQUIRED}. Received dictionary with input fields: {list(obj)}.")
    params = obj.get("params")
    if params is not None and not isinstance(params, dict):
        raise ScoringError(f"'params' must be a JSON object, got {type(params).__name__}")
    key = keys[0]
    value = obj[key]
    if key == "dataframe_split":
        return _cast_columns(_split_frame(value), schema), params
    if key == "dataframe_records":
        return _cast_columns(_records_frame(value), schema), params
    if key == "instances":
        return _instances(value, schema), params
    return _inputs(value, schema), params


def _split_frame(value: Any) -> Any:
    import pandas as pd

    if not isinstance(value, dict):
        raise ScoringError(f"Dataframe split format must be a dictionary. Got {type(value).__name__}.")
    extra = set(value) - {"columns", "data", "index"}
    if "data" not in value or extra:
        raise ScoringError(
            f"Dataframe split format must have a 'data' field and optionally 'columns' and 'index'. Got {sorted(value)}."
        )
    try:
        rows = value["data"]
        if rows and isinstance(rows, list) and isinstance(rows[0], list):
            import numpy as np

            arr = np.asarray(rows)  # one numeric block is much faster to build than a frame of lists
            if arr.ndim == 2 and arr.dtype.kind in "fiub":
                return pd.DataFrame(arr, columns=value.get("columns"), index=value.get("index"))
        return pd.DataFrame(data=rows, columns=value.get("columns"), index=value.get("index"))
    except (ValueError, TypeError) as e:
        raise ScoringError(f"dataframe_split is not a valid DataFrame in 'split' format: {e}") from None


def _records_frame(value: Any) -> Any:
    import pandas as pd

    if not isinstance(value, list):
        raise ScoringError(f"Dataframe records format must be a list of records. Got {type(value).__name__}.")
    try:
        return pd.DataFrame(data=value)
    except (ValueError, TypeError) as e:
        raise ScoringError(f"dataframe_records is not a valid DataFrame in 'records' format: {e}") from None


def _tensor_dtype(schema: Any) -> Any:
    if schema is not None and schema.is_tensor:
        import numpy as np

        spec = schema.specs[0]["tensor-spec"]
        return None if spec["dtype"] in ("str", "object") else np.dtype(spec["dtype"])
    return None


def _array(values: Any, dtype: Any = None) -> Any:
    import numpy as np

    try:
        return np.array(values, dtype=dtype) if dtype is not None else np.array(values)
    except (ValueError, TypeError) as e:
        raise ScoringError(f"Could not read the input as an array: {e}") from None


def _instances(value: Any, schema: Any) -> Any:
    """TF-serving row format: a list of records becomes columns, anything else one tensor."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns: dict[str, list[Any]] = {}
        for row in value:
            for k, v in row.items():
                columns.setdefault(k, []).append(v)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ScoringError("The length of values for each input/column name are not the same")
        return {k: _array(v) for k, v in columns.items()}
    return _inputs(value, schema)


def _inputs(value: Any, schema: Any) -> Any:
    """TF-serving column format: a dict of columns, a list of records, or one tensor."""
    names = schema.input_names() if schema is not None and not schema.is_tensor else []
    if isinstance(value, dict):
        return {k: _array(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _cast_columns(_records_frame(value), schema)
    if len(names) == 1 and isinstance(value, list):
        return {names[0]: _array(value)}
    return _array(value, _tensor_dtype(schema))


def _cast_columns(frame: Any, schema: Any) -> Any:
    """JSON has one number type: give float columns the schema's width (float32 for 'float')."""
    if schema is None or schema.is_tensor:
        return frame
    dtypes = dict(zip(frame.columns, frame.dtypes))
    for spec in schema.specs:
        name, want = spec.get("name"), spec.get("type")
        dtype = dtypes.get(name)
        if dtype is not None and want in ("float", "double") and dtype.kind == "f":
            target = "float32" if want == "float" else "float64"
            if dtype.name != target:
                frame[name] = frame[name].astype(target)
    return frame


_CSV_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool",
              "string": "object", "binary": "object", "datetime": "object"}


def _parse_csv(body: bytes, schema: Any) -> Any:
    import pandas as pd

    dtypes = None
    if schema is not None and not schema.is_tensor:
        dtypes = {s["name"]: _CSV_TYPES.get(s.get("type"), "object") for s in schema.specs if s.get("name")}
    try:
        return pd.read_csv(io.BytesIO(body), dtype=dtypes)
    except (ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ScoringError(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid CSV-formatted "
            f"Pandas DataFrame produced using the `pandas.DataFrame.to_csv()` method. Error: {e}"
        ) from None


def _parse_parquet(body: bytes) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(body))
    except ImportError as e:
        raise ScoringError(f"Parquet input needs pyarrow on the server: {e}", 415) from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise ScoringError(f"Failed to parse input as a Parquet DataFrame. Error: {e}") from None


# -- output ------------------------------------------------------------------------------------


def jsonable(predictions: Any) -> Any:
    """Predictions as MLflow serves them (``_get_jsonable_obj`` with records orientation)."""
    import numpy as np
    import pandas as pd

    if isinstance(predictions, np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return pd.DataFrame(predictions).to_dict(orient="records")
    return predictions


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(o).decode("ascii")
    if isinstance(o, (dt.datetime, dt.date, dt.time)):
        return o.isoformat()
    if hasattr(o, "isoformat"):  # pandas Timestamp
        return o.isoformat()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": ...}`` as bytes."""
    return json.dumps({"predictions": jsonable(predictions)}, default=_default).encode()


def error_body(message: str, error_code: str = "BAD_REQUEST") -> bytes:
    return json.dumps({"error_code": error_code, "message": message}).encode()
