"""The MLmodel file: MLflow's description of a model directory.

A model is a directory with an ``MLmodel`` YAML file naming its flavors
(how each library loads it) and a ``python_function`` flavor (how any
Python caller loads it), plus its signature, input example and
environment files. gitml writes the same format MLflow does, so either
tool loads the other's models.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue, ModelNotFound
from gitml.models.environment import installed_version, python_version  # noqa: F401 - flavors import them here
from gitml.models.signature import ModelSignature

MLMODEL = "MLmodel"  # also tracking.logged_models.MLMODEL_FILE, which the registry layer reads
PYFUNC = "python_function"
# The MLflow version whose format gitml writes (the loaders check it only for warnings).
MLFLOW_FORMAT_VERSION = "3.5.0"


@dataclass
class Model:
    """The content of an MLmodel file."""

    artifact_path: str | None = None
    run_id: str | None = None
    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    signature: ModelSignature | None = None
    saved_input_example_info: dict[str, Any] | None = None
    model_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    utc_time_created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"))
    mlflow_version: str = MLFLOW_FORMAT_VERSION
    #: MLflow 3's logged-model id (``m-...``), set when the model is logged with a run.
    model_id: str | None = None
    #: The ``metadata`` mapping given to ``save_model``/``log_model``.
    metadata: dict[str, Any] | None = None
    #: ``params``, ``tags`` and ``model_type`` given to ``log_model`` (MLflow 3 keeps them on its
    #: LoggedModel entity; gitml keeps them with the model).
    logged_model: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_flavor(self, name: str, **params: Any) -> None:
        self.flavors[name] = params

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "artifact_path": self.artifact_path,
            "flavors": self.flavors,
            "mlflow_version": self.mlflow_version,
            "model_uuid": self.model_uuid,
            "utc_time_created": self.utc_time_created,
        }
        if self.run_id:
            out["run_id"] = self.run_id
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        if self.saved_input_example_info:
            out["saved_input_example_info"] = self.saved_input_example_info
        if self.model_id:
            out["model_id"] = self.model_id
        if self.metadata:
            out["metadata"] = self.metadata
        if self.logged_model:
            out["logged_model"] = self.logged_model
        out.update(self.extra)
        return {k: v for k, v in out.items() if v is not None}

    def save(self, directory: str | os.PathLike[str]) -> None:
        import yaml

        Path(directory, MLMODEL).write_text(yaml.safe_dump(self.to_dict(), default_flow_style=False, sort_keys=True))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Model:
        """Read ``<directory>/MLmodel``.

        Raises:
            ModelNotFound: no MLmodel file there.
            InvalidValue: the file is not a valid MLmodel.
        """
        path = Path(directory, MLMODEL)
        if not path.is_file():
            raise ModelNotFound(f"No MLmodel file in {str(directory)!r}: not a model directory")
        return cls.from_yaml(path.read_text(), str(path))

    @classmethod
    def from_yaml(cls, text: str | bytes, where: str) -> Model:
        """Parse the text of an MLmodel file (``where`` names it in errors).

        Raises:
            InvalidValue: not YAML, or no ``flavors`` mapping.
        """
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise InvalidValue(f"{where} is not valid YAML: {e}") from e
        if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
            raise InvalidValue(f"{where} has no 'flavors' mapping: not an MLmodel file")
        known = {"artifact_path", "run_id", "flavors", "signature", "saved_input_example_info",
                 "model_uuid", "utc_time_created", "mlflow_version", "model_id", "metadata", "logged_model"}
        mapping = {k: data.get(k) if isinstance(data.get(k), dict) else None for k in ("metadata", "logged_model")}
        model_id = data.get("model_id")
        return cls(
            model_id=model_id if isinstance(model_id, str) else None,
            metadata=mapping["metadata"],
            logged_model=mapping["logged_model"],
            artifact_path=data.get("artifact_path"),
            run_id=data.get("run_id"),
            flavors=data["flavors"],
            signature=ModelSignature.from_dict(data.get("signature")),
            saved_input_example_info=data.get("saved_input_example_info"),
            model_uuid=data.get("model_uuid") or uuid.uuid4().hex,
            utc_time_created=data.get("utc_time_created") or "",
            mlflow_version=data.get("mlflow_version") or "",
            extra={k: v for k, v in data.items() if k not in known},
        )


def save_input_example(directory: Path, example: Any, model: Model) -> None:
    """Store an input example as MLflow does (``input_example.json``, split orient for tables)."""
    import json

    import numpy as np
    import pandas as pd

    if isinstance(example, dict) and not all(np.ndim(v) for v in example.values()):
        example = pd.DataFrame([example])
    elif isinstance(example, dict):
        example = pd.DataFrame(example)
    if isinstance(example, pd.DataFrame):
        payload = json.loads(example.to_json(orient="split", index=False))
        payload.pop("index", None)
        info = {"artifact_path": "input_example.json", "type": "dataframe", "pandas_orient": "split"}
        serving = {"dataframe_split": payload}
    else:
        payload = np.asarray(example).tolist()
        info = {"artifact_path": "input_example.json", "type": "ndarray", "format": "tf-serving"}
        serving = {"inputs": payload}
    (directory / "input_example.json").write_text(json.dumps(payload))
    (directory / "serving_input_example.json").write_text(json.dumps(serving, indent=2))
    info["serving_input_path"] = "serving_input_example.json"
    model.saved_input_example_info = info


def load_input_example(directory: Path, model: Model) -> Any:
    import json

    import pandas as pd

    info = model.saved_input_example_info
    if not info:
        return None
    data = json.loads((directory / info["artifact_path"]).read_text())
    if info.get("type") == "dataframe":
        return pd.DataFrame(data["data"], columns=data.get("columns"))
    import numpy as np

    return np.asarray(data)
