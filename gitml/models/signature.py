"""Model signatures in MLflow's format: column specs or tensor specs, as JSON strings.

``infer_signature`` reads an input example (pandas DataFrame, dict of
columns, numpy array) and optional outputs; ``enforce_schema`` applies a
signature at predict time the way MLflow's pyfunc does: missing columns
are an error naming them, extra columns are dropped, and only safe type
conversions are made (int to float when every value converts exactly, never
float to int).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import GitmlError


class SchemaMismatch(GitmlError):
    """Input does not match the model's signature."""

    http_status = 400
    error_code = "BAD_REQUEST"


# numpy dtype kind/name -> MLflow column type
_COLUMN_TYPES = {
    "bool": "boolean",
    "int8": "integer", "int16": "integer", "int32": "integer", "uint8": "integer", "uint16": "integer",
    "int64": "long", "uint32": "long", "uint64": "long",
    "float32": "float", "float16": "float",
    "float64": "double",
    "object": "string", "str": "string", "string": "string",
    "bytes": "binary",
    "datetime64[ns]": "datetime",
}
# column type -> types it may be safely converted from
_SAFE_FROM = {
    "double": {"double", "float", "integer", "long"},
    "float": {"float", "integer"},
    "long": {"long", "integer"},
    "integer": {"integer"},
    "string": {"string"},
    "boolean": {"boolean"},
    "binary": {"binary"},
    "datetime": {"datetime"},
}
# float type -> bits of its mantissa: integers up to 2**bits in magnitude convert exactly
_MANTISSA_BITS = {"double": 53, "float": 24, "float64": 53, "float32": 24, "float16": 11}
_NUMPY_OF = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32",
             "boolean": "bool", "string": "object", "binary": "object", "datetime": "datetime64[ns]"}


class DataType:
    """MLflow's column types (``mlflow.types.DataType.double``...), as their names."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"


@dataclass
class ColSpec:
    """One column of a column signature (MLflow's ``mlflow.types.ColSpec``)."""

    type: str
    name: str | None = None
    required: bool = True

    def __post_init__(self) -> None:
        self.type = str(getattr(self.type, "name", self.type))  # an enum member (MLflow's DataType) or a name
        if self.type not in _SAFE_FROM:
            raise SchemaMismatch(f"Unknown column type {self.type!r}; expected one of {', '.join(_SAFE_FROM)}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            out["name"] = str(self.name)
        out["required"] = self.required
        return out


@dataclass
class TensorSpec:
    """One tensor of a tensor signature (MLflow's ``mlflow.types.TensorSpec(np.dtype, shape, name)``)."""

    type: Any
    shape: tuple[int, ...] | list[int]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {"type": "tensor", "tensor-spec": {"dtype": _dtype_name(np.dtype(self.type)),
                                                               "shape": list(self.shape)}}
        if self.name is not None:
            out["name"] = str(self.name)
        return out


def _spec_object(spec: dict[str, Any]) -> ColSpec | TensorSpec:
    if spec.get("type") == "tensor":
        tensor = spec.get("tensor-spec") or {}
        return TensorSpec(tensor.get("dtype"), tuple(tensor.get("shape") or ()), spec.get("name"))
    return ColSpec(spec["type"], spec.get("name"), spec.get("required", True))


@dataclass
class Schema:
    """Either named columns (``{"type", "name", "required"}``) or tensors (``{"type": "tensor", ...}``).

    Built from spec dicts (as stored) or from ``ColSpec``/``TensorSpec``
    objects, as MLflow's ``Schema([ColSpec("double", "x")])``.
    """

    specs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.specs = [s.to_dict() if hasattr(s, "to_dict") else s for s in self.specs]

    @property
    def is_tensor(self) -> bool:
        return bool(self.specs) and self.specs[0].get("type") == "tensor"

    @property
    def inputs(self) -> list[ColSpec | TensorSpec]:
        """The specs as MLflow's objects (``.name``, ``.type``)."""
        return [_spec_object(s) for s in self.specs]

    def __iter__(self) -> Any:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.specs)

    def input_names(self) -> list[str]:
        return [s["name"] for s in self.specs if "name" in s]

    def has_input_names(self) -> bool:
        return bool(self.specs) and all("name" in s for s in self.specs)

    def input_types(self) -> list[str]:
        return [s["tensor-spec"]["dtype"] if s.get("type") == "tensor" else s["type"] for s in self.specs]

    def is_tensor_spec(self) -> bool:
        return self.is_tensor

    def to_dict(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.specs]

    def __str__(self) -> str:
        def one(s: dict[str, Any]) -> str:
            if s.get("type") == "tensor":
                t = s["tensor-spec"]
                kind = f"Tensor('{t['dtype']}', {tuple(t['shape'])})"
            else:
                kind = f"{s['type']} ({'required' if s.get('required', True) else 'optional'})"
            return f"{s['name']!r}: {kind}" if "name" in s else kind

        return "[" + ", ".join(one(s) for s in self.specs) + "]"

    def to_json(self) -> str:
        return json.dumps(self.specs)

    @classmethod
    def from_json(cls, text: str | None) -> Schema | None:
        return cls(json.loads(text)) if text else None


@dataclass
class ModelSignature:
    """A model's input, output and inference-params schemas (MLflow's ``ModelSignature``)."""

    inputs: Schema | None = None
    outputs: Schema | None = None
    params: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        # MLflow takes a list of specs where a Schema is expected, too
        for attr in ("inputs", "outputs"):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, Schema):
                setattr(self, attr, Schema(list(value)))

    def __str__(self) -> str:
        params = json.dumps(self.params) if self.params else "None"
        return (f"inputs: \n  {self.inputs if self.inputs is not None else 'None'}\n"
                f"outputs: \n  {self.outputs if self.outputs is not None else 'None'}\n"
                f"params: \n  {params}\n")

    def to_dict(self) -> dict[str, str | None]:
        return {
            "inputs": self.inputs.to_json() if self.inputs else None,
            "outputs": self.outputs.to_json() if self.outputs else None,
            "params": json.dumps(self.params) if self.params else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelSignature | None:
        if not data:
            return None
        params = data.get("params")
        return cls(Schema.from_json(data.get("inputs")), Schema.from_json(data.get("outputs")),
                   json.loads(params) if params else None)


def _dtype_name(dtype: Any) -> str:
    name = str(dtype)
    if name.startswith("datetime64"):
        return "datetime64[ns]"
    if name.startswith(("<U", "str")):
        return "str"
    return name


def schema_of(data: Any) -> Schema:
    """The schema MLflow would infer for ``data``."""
    import numpy as np
    import pandas as pd

    if isinstance(data, dict):
        data = pd.DataFrame({k: np.atleast_1d(v) for k, v in data.items()})
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        specs = []
        for name, col in data.items():
            kind = _dtype_name(col.dtype)
            col_type = _COLUMN_TYPES.get(kind)
            if kind == "object":
                values = col.dropna()
                if len(values) and all(isinstance(v, bytes) for v in values):
                    col_type = "binary"
                elif len(values) and all(isinstance(v, bool) for v in values):
                    col_type = "boolean"
            if col_type is None:
                raise SchemaMismatch(f"Cannot infer a signature type for column {name!r} of dtype {col.dtype}")
            specs.append({"type": col_type, "name": str(name), "required": not bool(col.isna().any())})
        return Schema(specs)
    arr = np.asarray(data)
    shape = [-1, *arr.shape[1:]] if arr.ndim else [-1]
    return Schema([{"type": "tensor", "tensor-spec": {"dtype": _dtype_name(arr.dtype), "shape": shape}}])


def _unnamed_column(output: Any) -> Schema | None:
    """One unnamed column for a 1-D array, or None when ``output`` is not one."""
    import numpy as np

    if not isinstance(output, np.ndarray) or output.ndim != 1:
        return None
    col_type = _COLUMN_TYPES.get(_dtype_name(output.dtype))
    return Schema([{"type": col_type, "required": True}]) if col_type else None


def infer_signature(model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None) -> ModelSignature:
    """A signature from example input, output and inference params (MLflow's ``infer_signature``)."""
    param_specs = None
    if params:
        param_specs = [{"name": k, "type": _param_type(v), "default": v, "shape": None} for k, v in params.items()]
    return ModelSignature(
        schema_of(model_input) if model_input is not None else None,
        schema_of(model_output) if model_output is not None else None,
        param_specs,
    )


def signature_from_example(example: Any, output: Any = None) -> ModelSignature:
    """The signature MLflow infers when a model is saved with an input example.

    As in MLflow, a 1-D array predicted from column input is one unnamed
    column (one value per row), not a tensor.
    """
    inputs = schema_of(example)
    outputs = None
    if output is not None:
        outputs = (None if inputs.is_tensor else _unnamed_column(output)) or schema_of(output)
    return ModelSignature(inputs, outputs)


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "string"


def enforce_schema(data: Any, schema: Schema) -> Any:
    """Make ``data`` fit ``schema`` or raise SchemaMismatch naming what is wrong.

    Column schemas: missing required columns are an error; extra columns
    are dropped; each column is converted only when that is lossless.
    """
    import numpy as np
    import pandas as pd

    if schema.is_tensor:
        spec = schema.specs[0]["tensor-spec"]
        arr = np.asarray(data.values if isinstance(data, pd.DataFrame) else data)
        want = np.dtype(spec["dtype"]) if spec["dtype"] not in ("str", "object") else np.dtype(object)
        if arr.dtype != want:
            if not np.can_cast(arr.dtype, want, casting="safe"):
                raise SchemaMismatch(f"Input tensor of dtype {arr.dtype} cannot be converted to {want} without loss")
            bits = _MANTISSA_BITS.get(want.name) if arr.dtype.kind in "iu" else None
            if bits and not _ints_fit(arr, bits):
                raise SchemaMismatch(f"Input tensor of dtype {arr.dtype} cannot be converted to {want} without "
                                     f"loss: it holds integers beyond 2**{bits} in magnitude")
            arr = arr.astype(want)
        expected = spec["shape"]
        if len(expected) != arr.ndim or any(e != -1 and e != a for e, a in zip(expected, arr.shape)):
            raise SchemaMismatch(f"Input tensor shape {list(arr.shape)} does not match the signature's {expected}")
        return arr
    if isinstance(data, dict):
        data = pd.DataFrame({k: np.atleast_1d(v) for k, v in data.items()})
    if not isinstance(data, pd.DataFrame):
        names = schema.input_names()
        arr = np.asarray(data)
        if arr.ndim == 2 and arr.shape[1] == len(names):
            data = pd.DataFrame(arr, columns=names)
        else:
            raise SchemaMismatch(f"Expected a table with columns {names}, got {type(data).__name__}")
    if _fits_as_is(data, schema):
        return data
    missing = [s["name"] for s in schema.specs if s.get("required", True) and s["name"] not in data.columns]
    if missing:
        raise SchemaMismatch(f"Model is missing inputs {missing}. Note that there were extra inputs: "
                             f"{sorted(set(map(str, data.columns)) - set(schema.input_names()))}")
    out = {}
    for spec in schema.specs:
        name = spec["name"]
        if name not in data.columns:
            continue
        col = data[name]
        have = _COLUMN_TYPES.get(_dtype_name(col.dtype), "string")
        want = spec["type"]
        if want == "binary" and have == "string" and _all_bytes(col):
            have = "binary"  # bytes live in object columns, as strings do
        if have != want:
            if have not in _SAFE_FROM.get(want, set()):
                raise SchemaMismatch(
                    f"Incompatible input types for column {name!r}: cannot safely convert {col.dtype} to {want}"
                )
            # int to double is exact only up to 2**53 (to float, 2**24): MLflow refuses
            # such conversions, gitml makes them when every value fits.
            bits = _MANTISSA_BITS.get(want) if have in ("integer", "long") else None
            if bits and not _ints_fit(col.to_numpy(), bits):
                raise SchemaMismatch(
                    f"Incompatible input types for column {name!r}: cannot safely convert {col.dtype} to {want}: "
                    f"it holds integers beyond 2**{bits} in magnitude, which would lose precision"
                )
            col = col.astype(_NUMPY_OF[want])
        out[name] = col
    return pd.DataFrame(out, index=data.index)


def _fits_as_is(data: Any, schema: Schema) -> bool:
    """The common case, checked cheaply: exactly the schema's columns, in order, each of its type."""
    if list(data.columns) != [s["name"] for s in schema.specs]:
        return False
    return all(_COLUMN_TYPES.get(_dtype_name(dt)) == s["type"] for dt, s in zip(data.dtypes, schema.specs))


def _all_bytes(col: Any) -> bool:
    """Whether every non-null value of an object column is bytes (a ``binary`` column)."""
    values = col.dropna()
    return bool(len(values)) and all(isinstance(v, bytes) for v in values)


def _ints_fit(values: Any, bits: int) -> bool:
    """Whether every integer in ``values`` is at most ``2**bits`` in magnitude (so a float holds it exactly)."""
    if not values.size:
        return True
    # Python ints: numpy's abs() of the smallest int64 overflows back to a negative number.
    return -(2**bits) <= int(values.min()) and int(values.max()) <= 2**bits
