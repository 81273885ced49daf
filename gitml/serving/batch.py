"""``gitml predict``: score a file with a model, as ``mlflow models predict`` does.

Input by extension (or ``content_type``): ``.csv``; ``.json`` in the
scoring server's payload format (``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``, plus ``params``); ``.parquet``. Output by
extension: ``.csv`` and ``.parquet`` write a table (one ``prediction``
column for 1-D predictions); ``.json`` and no output (stdout) write
``{"predictions": ...}`` as the server answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.serving.protocol import CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET, parse_request, \
    predictions_body

_BY_SUFFIX = {".csv": CONTENT_TYPE_CSV, ".json": CONTENT_TYPE_JSON, ".parquet": CONTENT_TYPE_PARQUET}


def predict_file(model_uri: str, input_path: str | os.PathLike[str], output_path: str | os.PathLike[str] | None = None,
                 content_type: str | None = None, allow_pickle: bool | None = None) -> Any:
    """Predict on the file at ``input_path``; write to ``output_path`` (stdout if None). Returns the predictions.

    ``allow_pickle`` as ``gitml.pyfunc.load_model``.

    Raises:
        InvalidValue (unknown format, unreadable input), ScoringError (a
        payload the server would refuse too), SchemaMismatch, UntrustedModel.
    """
    from gitml.models.pyfunc import load_model

    src = Path(input_path)
    kind = content_type or _BY_SUFFIX.get(src.suffix.lower())
    if kind is None:
        raise InvalidValue(f"Cannot tell the format of {str(src)!r}: use .csv, .json or .parquet, or pass --content-type")
    try:
        body = src.read_bytes()
    except OSError as e:
        raise InvalidValue(f"Cannot read input {str(src)!r}: {e.strerror}") from None
    model = load_model(model_uri, allow_pickle=allow_pickle)
    data, params = parse_request(body, kind, model.metadata.signature)
    predictions = model.predict(data, params=params) if params else model.predict(data)
    write_predictions(predictions, output_path)
    return predictions


def write_predictions(predictions: Any, output_path: str | os.PathLike[str] | None) -> None:
    if output_path is None:
        sys.stdout.write(predictions_body(predictions).decode() + "\n")
        return
    out = Path(output_path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".json"):
        raise InvalidValue(f"Cannot write {str(out)!r}: use .csv, .json or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if suffix == ".json":
        tmp.write_bytes(predictions_body(predictions) + b"\n")
    else:
        frame = _frame(predictions)
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError as e:
                raise InvalidValue(f"Writing parquet needs pyarrow: {e}") from None
    os.replace(tmp, out)  # a failed run leaves no half-written output


def _frame(predictions: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return predictions
    if isinstance(predictions, pd.Series):
        return predictions.to_frame(predictions.name if predictions.name is not None else "prediction")
    arr = np.asarray(predictions)
    if arr.ndim == 1:
        return pd.DataFrame({"prediction": arr})
    return pd.DataFrame(arr.reshape(len(arr), -1))
