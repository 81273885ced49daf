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
import binascii
import datetime as dt
import io
import itertools
import json
import sys
from typing import Any, NamedTuple

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


class ArrayInput(NamedTuple):
    """A ``dataframe_split`` table that is exactly the model's ``array_lane``: its values as one array."""

    values: Any


def parse_request(body: bytes, content_type: str | None, signature: Any = None,
                  array_lane: tuple[list[str], str] | None = None) -> tuple[Any, dict[str, Any] | None]:
    """(model input, params) from a request body, as MLflow's scoring server parses it.

    With ``array_lane`` (the model's ``(columns, dtype)``, ``PyFuncModel.array_lane``),
    a ``dataframe_split`` of exactly those columns, every value of that
    dtype, and no params comes back as ``ArrayInput``, no DataFrame built
    (an index that names the rows, as ``to_dict(orient="split")`` sends, is checked and left out).

    Raises:
        ScoringError: 415 for a content type or charset it does not take,
        400 for a body that does not parse or has the wrong shape (also one
        nested too deeply, or holding a lone surrogate).
    """
    mime, options = _content_type(content_type)
    inputs = getattr(signature, "inputs", None)
    try:
        if mime == CONTENT_TYPE_JSON:
            return _parse_json(body, inputs, array_lane)
        if mime == CONTENT_TYPE_CSV:
            return _parse_csv(body, inputs), None
        if mime == CONTENT_TYPE_PARQUET:
            return _parse_parquet(body), None
    except RecursionError:
        # json.loads, numpy and pandas all recurse per level: 10^5 nested [ is a RecursionError, not a 500
        raise ScoringError(f"The request body is nested too deeply to read (deeper than about "
                           f"{sys.getrecursionlimit()} levels of arrays or objects)") from None
    except UnicodeEncodeError as e:  # a JSON "\ud800" escape: a lone surrogate, which no UTF-8 string holds
        raise ScoringError(f"The request holds a string that is not valid Unicode: {e}") from None
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


def _parse_json(body: bytes, schema: Any,
                array_lane: tuple[list[str], str] | None = None) -> tuple[Any, dict[str, Any] | None]:
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
        if array_lane is not None and params is None:
            values = _lane_values(value, *array_lane)
            if values is not None:
                return ArrayInput(values), None
        frame, block_dtype = _split_frame(value)
        dtypes = None if block_dtype is None else [block_dtype] * frame.shape[1]
        return _cast_columns(frame, schema, dtypes=dtypes), params
    if key == "dataframe_records":
        return _cast_columns(_records_frame(value), schema), params
    if key == "instances":
        return _instances(value, schema), params
    return _inputs(value, schema), params


def _split_frame(value: Any) -> tuple[Any, Any]:
    """The frame, and the dtype of all its columns when it was built as one numeric block (else None)."""
    import pandas as pd

    if not isinstance(value, dict):
        raise ScoringError(f"Dataframe split format must be a dictionary. Got {type(value).__name__}.")
    extra = set(value) - {"columns", "data", "index"}
    if "data" not in value or extra:
        raise ScoringError(
            f"Dataframe split format must have a 'data' field and optionally 'columns' and 'index'. Got {sorted(value)}."
        )
    rows = value["data"]
    try:
        block = _numeric_block(rows)
        if block is not None:
            return pd.DataFrame(block, columns=value.get("columns"), index=value.get("index")), block.dtype
        return pd.DataFrame(data=rows, columns=value.get("columns"), index=value.get("index")), None
    except (ValueError, TypeError) as e:
        raise ScoringError(f"dataframe_split is not a valid DataFrame in 'split' format: {e}") from None


_BLOCK_DTYPES = {float: "float64", int: "int64", bool: "bool"}


def _lane_values(value: Any, columns: list[str], dtype: str) -> Any:
    """The rows of a split table as one array when it has exactly ``columns`` and every value is ``dtype``.

    An index (``to_dict(orient="split")`` sends one) names the rows only: a
    model in the lane predicts from the values, so it is checked and left out.
    """
    if not isinstance(value, dict) or value.get("columns") != columns or not value.keys() <= {"columns", "data",
                                                                                                 "index"}:
        return None
    import numpy as np

    block = _numeric_block(value.get("data"))
    if block is None or block.dtype != dtype or block.ndim != 2 or block.shape[1] != len(columns):
        return None
    index = value.get("index")
    if index is not None and (type(index) is not list or len(index) != len(block)
                              or not all(type(i) in (int, str) for i in index)):
        return None  # the frame path says what is wrong with it
    # Column-major, as the frame's to_numpy() is: BLAS rounds differently on the two
    # layouts, and the lane must give the frame path's predictions to the last bit.
    return np.asfortranarray(block)


def _numeric_block(rows: Any) -> Any:
    """``rows`` as one 2-D array when that is exactly the frame pandas would build from them, else None.

    One numeric block is much faster to turn into a frame than a list of
    lists, but it is only the same frame when every value has one type:
    all floats (each column float64), all ints (int64) or all bools. Mixed
    ints and floats (an int column beside a float one), ragged rows,
    strings and nulls go through pandas' own per-column inference.
    """
    if not rows or type(rows) is not list or type(rows[0]) is not list:
        return None
    width = len(rows[0])
    if not width or any(type(r) is not list or len(r) != width for r in rows):
        return None
    types = set(map(type, itertools.chain.from_iterable(rows)))
    if len(types) != 1:
        return None
    dtype = _BLOCK_DTYPES.get(types.pop())
    if dtype is None:
        return None
    import numpy as np

    try:
        return np.array(rows, dtype=dtype)
    except OverflowError:  # ints beyond int64: pandas decides (uint64 or object)
        return None


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
        return _cast_arrays({k: _array(v) for k, v in columns.items()}, schema)
    return _inputs(value, schema)


def _inputs(value: Any, schema: Any) -> Any:
    """TF-serving column format: a dict of columns, a list of records, or one tensor."""
    names = schema.input_names() if schema is not None and not schema.is_tensor else []
    if isinstance(value, dict):
        return _cast_arrays({k: _array(v) for k, v in value.items()}, schema)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _cast_columns(_records_frame(value), schema, decode_base64=False)
    if len(names) == 1 and isinstance(value, list):
        return _cast_arrays({names[0]: _array(value)}, schema)
    return _array(value, _tensor_dtype(schema))


def _column_types(schema: Any) -> dict[str, str]:
    if schema is None or schema.is_tensor:
        return {}
    return {s["name"]: s.get("type") for s in schema.specs if s.get("name") is not None}


def _cast_columns(frame: Any, schema: Any, decode_base64: bool = True, dtypes: list[Any] | None = None) -> Any:
    """Each schema column of a frame parsed from JSON, cast to the schema's type as MLflow does.

    MLflow's ``cast_df_types_according_to_schema``: numbers take the
    column's width, ``datetime`` strings are parsed, ``binary`` values are
    base64-decoded (for ``dataframe_split``/``dataframe_records``; as in
    MLflow, records under ``inputs`` keep the text's bytes), strings are
    left alone. Unlike MLflow, a numeric cast that would change a value
    (1.5 into a ``long``, 2**40 into an ``integer``, a null into an integer
    column, "false" into a ``boolean``) is refused rather than made.

    ``dtypes``, when the caller knows them, saves asking the frame (tens of
    microseconds, a tenth of a small request).

    Raises:
        ScoringError: 400 naming the column that does not convert.
    """
    types = _column_types(schema)
    if not types:
        return frame
    for i, (name, dtype) in enumerate(zip(frame.columns, frame.dtypes.tolist() if dtypes is None else dtypes)):
        want = types.get(name)
        if want is None or _NUMPY_OF.get(want) == dtype.name:
            continue  # the common case: already the schema's type
        col = _cast(name, frame.iloc[:, i], want, decode_base64)
        if col is not None:
            frame.isetitem(i, col)
    return frame


def _cast_arrays(columns: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A dict of 1-D column arrays (``inputs``/``instances``) cast as MLflow's ``convert_data_type`` does.

    As MLflow, ``binary`` values here are the bytes of the text sent (only
    the ``dataframe_*`` formats base64-decode them).
    """
    types = _column_types(schema)
    if not types:
        return columns
    import pandas as pd

    out = dict(columns)
    for name, arr in columns.items():
        want = types.get(name)
        if want is None or getattr(arr, "ndim", 0) != 1 or _NUMPY_OF.get(want) == arr.dtype.name:
            continue
        col = _cast(name, pd.Series(arr), want, decode_base64=False)
        if col is not None:
            out[name] = col.to_numpy()
    return out


_NUMPY_OF = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}
_INT_RANGE = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_MANTISSA_BITS = {"double": 53, "float": 24}


def _cast(name: str, col: Any, want: str, decode_base64: bool) -> Any:
    """``col`` (a Series) as schema type ``want``; None to leave it as it is."""
    try:
        if want in _NUMPY_OF:
            return _cast_number(col, want)
        if want == "datetime":
            return _cast_datetime(col)
        if want == "binary":
            return _cast_binary(col, decode_base64)
        return None  # string, and types gitml does not cast: enforce_schema judges them
    except (ValueError, TypeError, OverflowError, binascii.Error) as e:
        raise ScoringError(
            f"Data is not compatible with the model signature: failed to convert column {name!r} to {want}: {e}"
        ) from None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cast_boolean(col: Any) -> Any:
    if col.dtype.kind == "b":
        return None
    bad = [v for v in col.tolist() if not (isinstance(v, bool) or (_is_number(v) and v in (0, 1)))]
    if bad:
        raise ValueError(f"{bad[0]!r} is not true, false, 0 or 1")
    return col.astype("bool")


def _cast_number(col: Any, want: str) -> Any:
    import numpy as np

    if want == "boolean":
        return _cast_boolean(col)
    kind = col.dtype.kind
    if kind == "O":  # mixed JSON types, all nulls, strings, or ints beyond int64
        values = [v for v in col.tolist() if v is not None]
        bad = [v for v in values if not _is_number(v)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a number")
        floats = len(values) < len(col) or any(isinstance(v, float) for v in values)
        col = col.astype("float64" if floats else "int64")
        kind = col.dtype.kind
    if kind == "b":
        raise ValueError("true and false are not numbers")
    if kind not in "iuf":
        return None  # a type JSON does not make: enforce_schema judges it
    arr = col.to_numpy()
    if want in ("double", "float"):
        bits = _MANTISSA_BITS[want]
        if kind in "iu" and arr.size and (int(arr.min()) < -(2**bits) or int(arr.max()) > 2**bits):
            raise ValueError(f"it holds integers beyond 2**{bits} in magnitude, which would lose precision")
        return col.astype(_NUMPY_OF[want])
    lo, hi = _INT_RANGE[want]
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("an integer cannot be null, NaN or infinite")
        fractional = arr[arr != np.floor(arr)]
        if fractional.size:
            raise ValueError(f"{fractional[0].item()!r} is not an integer")
        out_of_range = arr.size and (arr.min() < lo or arr.max() >= hi + 1)  # both bounds are exact floats
    else:
        out_of_range = arr.size and (int(arr.min()) < lo or int(arr.max()) > hi)
    if out_of_range:
        raise ValueError(f"a value is outside the range of {want} ({lo} to {hi})")
    return col.astype(_NUMPY_OF[want])


def _cast_datetime(col: Any) -> Any:
    import pandas as pd

    if col.dtype.kind == "M":
        return None
    parsed = pd.to_datetime(col)
    if not pd.api.types.is_datetime64_any_dtype(parsed):
        raise ValueError("the values are not one kind of date and time (mixed time zones?)")
    if getattr(parsed.dt, "unit", "ns") != "ns":  # pandas 3 parses to microseconds; MLflow's datetime is ns
        parsed = parsed.dt.as_unit("ns")
    return parsed


def _cast_binary(col: Any, decode_base64: bool) -> Any:
    def one(v: Any) -> Any:
        if v is None or isinstance(v, bytes) or (isinstance(v, float) and v != v):
            return v  # missing
        if not isinstance(v, str):
            raise TypeError(f"{v!r} is not a base64 string")
        return base64.decodebytes(v.encode("utf-8")) if decode_base64 else v.encode("utf-8")

    if col.dtype.kind == "S":
        return None
    return col.map(one).astype(object)


_CSV_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool",
              "string": "object", "binary": "object", "datetime": "object"}


def _parse_csv(body: bytes, schema: Any) -> Any:
    import pandas as pd

    dtypes = None
    if schema is not None and not schema.is_tensor:
        dtypes = {s["name"]: _CSV_TYPES.get(s.get("type"), "object") for s in schema.specs if s.get("name")}
    try:
        return pd.read_csv(io.BytesIO(body), dtype=dtypes)
    except (ValueError, TypeError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ScoringError(  # OverflowError: a number too long for the signature's column type
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
