"""What the xgboost and lightgbm flavors share: a native model file named in
the flavor's ``data`` key, the model's class in ``model_class``, and a pyfunc
wrapper. A class named in an MLmodel is imported only from its own library."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models.mlmodel import PYFUNC, Model, python_version
from gitml.models.pyfunc import add_code_to_path
from gitml.models.saving import SaveOptions, finish, new_model_dir


def class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def import_class(name: str, library: str) -> Any:
    """The class ``name`` (``module.Class``), refused unless it belongs to ``library``."""
    if not name.startswith(library + "."):
        raise InvalidValue(f"Refusing model class {name!r}: a {library} model must name a {library} class")
    module, _, cls = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise InvalidValue(f"Model class {name!r} not found in the installed {library}") from e


def save_native(out_path: str | os.PathLike[str], flavor: str, loader: str, model: Any, filename: str,
                write: Any, flavor_conf: dict[str, Any], signature: Any, input_example: Any,
                packages: list[str], predict: Any, options: SaveOptions | None = None) -> Model:
    """Write the model file with ``write(path)`` and the MLmodel around it (``options``: MLflow's
    code_paths, environment and metadata arguments)."""
    with new_model_dir(out_path) as out:
        write(out / filename)
        meta = Model()
        meta.add_flavor(PYFUNC, loader_module=loader, data=filename,
                        env={"conda": "conda.yaml", "virtualenv": "python_env.yaml"}, python_version=python_version())
        meta.add_flavor(flavor, data=filename, model_class=class_name(model), code=None, **flavor_conf)
        finish(out, meta, signature, input_example, predict, packages, options)
    return meta


def flavor_conf(model_uri: str, flavor: str, dst_path: str | None,
                allow_pickle: bool | None = None) -> tuple[Path, dict[str, Any]]:
    """The model's directory and its ``flavor`` configuration; its ``code`` goes on sys.path (gated).

    Raises:
        InvalidValue: no such flavor; UntrustedModel: code nothing vouches for.
    """
    from gitml.models.uri import local_model_path

    path = local_model_path(model_uri, dst_path)
    conf = Model.load(path).flavors.get(flavor)
    if conf is None:
        raise InvalidValue(f"Model at {model_uri!r} has no {flavor} flavor")
    add_code_to_path(path, conf, allow_pickle)
    return path, conf


class Wrapper:
    """pyfunc wrapper: ``predict`` through ``to_input`` (e.g. a DMatrix for raw boosters)."""

    def __init__(self, model: Any, to_input: Any = None) -> None:
        self.model = model
        self._to_input = to_input

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(self._to_input(data) if self._to_input else data, **(params or {}))
