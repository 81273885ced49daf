"""PyTorch flavor: save, log and load ``torch.nn.Module`` models in MLflow 3's format.

The default serialization is ``pt2``, as in MLflow 3: the model is traced
with ``torch.export`` on the input example and written with
``torch.export.save`` to ``data/model.pt2``; loading it does not need the
model's class. Before torch reads a pt2 file, gitml checks that it holds no
code (``gitml.models.pt2``).

``serialization_format="pickle"`` writes the whole module with
``torch.save`` (cloudpickle) to ``data/model.pth``, as MLflow does. Loading
that runs code from the file, so it goes through ``gitml.models.trust``'s
gate: it loads if this machine saved it in this repository, or with
``allow_pickle=True`` / ``GITML_ALLOW_PICKLE=1``. Which file is loaded
follows the files present (as in MLflow), not the ``serialization_format``
key the MLmodel records.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models import trust
from gitml.models.mlmodel import PYFUNC, Model, python_version
from gitml.models.saving import SaveOptions, check_kwargs, finish, new_model_dir
from gitml.models.signature import ModelSignature, signature_from_example

FLAVOR = "pytorch"
PT2 = "pt2"
PICKLE = "pickle"
FORMATS = (PT2, PICKLE)
DATA = "data"
PT2_FILE = "model.pt2"
PICKLE_FILE = "model.pth"
PICKLE_MODULE_INFO = "pickle_module_info.txt"
# The name MLflow's loader imports to unpickle model.pth: cloudpickle's
# Pickler with the standard Unpickler. Only these names are accepted when
# reading a model; they all unpickle with the standard pickle module.
PICKLE_MODULE = "mlflow.pytorch.pickle_module"
_KNOWN_PICKLE_MODULES = {PICKLE_MODULE, "cloudpickle", "pickle"}


def save_model(pytorch_model: Any, path: str | os.PathLike[str], serialization_format: str = PT2,
               signature: ModelSignature | None = None, input_example: Any = None,
               pip_requirements: list[str] | str | None = None, *, conda_env: Any = None,
               code_paths: list[str] | None = None, extra_pip_requirements: list[str] | str | None = None,
               metadata: dict[str, Any] | None = None, **kwargs: Any) -> Model:
    """Write ``pytorch_model`` as an MLflow-format model directory at ``path``.

    ``pt2`` (the default) traces the model in eval mode on ``input_example``
    (a numpy array or tensor of at least 2 rows: the first dimension stays
    dynamic). ``pickle`` stores the module itself; it loads only with
    ``allow_pickle=True`` elsewhere (this machine records it as trusted here).

    Raises:
        InvalidValue: unknown format, not a torch module, no usable input
            example for pt2, or the path is not empty.
    """
    import torch

    check_kwargs(kwargs, "pytorch.save_model")
    options = SaveOptions.of(code_paths, conda_env, pip_requirements, extra_pip_requirements, metadata)
    if serialization_format not in FORMATS:
        raise InvalidValue(f"Unknown serialization_format {serialization_format!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(pytorch_model, torch.nn.Module):
        raise InvalidValue(f"pytorch_model must be a torch.nn.Module, got {type(pytorch_model).__name__}")
    example = _as_array(input_example)
    if serialization_format == PT2:
        _check_pt2_input(pytorch_model, example)
    if signature is None and example is not None:
        signature = signature_from_example(example, _predict_eval(pytorch_model, example))
    dynamic = _dynamic_dims(example, signature) if serialization_format == PT2 else {}
    with new_model_dir(path) as out:
        data = out / DATA
        data.mkdir()
        if serialization_format == PT2:
            _export(pytorch_model, example, dynamic, data / PT2_FILE)
        else:
            _pickle(pytorch_model, data)
        meta = Model()
        meta.add_flavor(PYFUNC, loader_module="mlflow.pytorch", data=DATA, pickle_module_name=PICKLE_MODULE,
                        env={"conda": "conda.yaml", "virtualenv": "python_env.yaml"}, python_version=python_version(),
                        config={"device": None})
        meta.add_flavor(FLAVOR, model_data=DATA, pytorch_version=str(torch.__version__), code=None,
                        serialization_format=serialization_format)
        packages = ["torch", "numpy", "pandas", *(["cloudpickle"] if serialization_format == PICKLE else [])]
        finish(out, meta, signature, example, None, packages, options)
    return meta


def log_model(pytorch_model: Any, name: str | None = None, serialization_format: str = PT2,
              signature: ModelSignature | None = None, input_example: Any = None,
              registered_model_name: str | None = None, pip_requirements: list[str] | str | None = None,
              artifact_path: str | None = None, *, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, model_type: str | None = None, **kwargs: Any) -> Any:
    """Save ``pytorch_model`` into the active run's artifacts under ``name`` (MLflow's ``log_model``)."""
    from gitml.models.uri import log_saved_model

    return log_saved_model(name or artifact_path or "model", registered_model_name, lambda d: save_model(
        pytorch_model, d, serialization_format, signature, input_example, pip_requirements, **kwargs),
        params=params, tags=tags, model_type=model_type)


def load_model(model_uri: str, dst_path: str | None = None, allow_pickle: bool | None = None) -> Any:
    """The ``torch.nn.Module`` of a model (``runs:/...`` or a path).

    A pt2 model comes back as the exported program's module (no class
    needed), once the file is checked to hold no code. A pickle model
    (``data/model.pth``) runs code from the file when loaded: it loads if
    this machine saved it in this repository, or with ``allow_pickle=True``
    (default: the ``GITML_ALLOW_PICKLE`` setting), which also skips the pt2
    check.

    Raises:
        InvalidValue: no pytorch flavor. UntrustedModel: a pt2 file that
            could run code, or a pickle model nothing vouches for.
    """
    from gitml.models.uri import local_model_path

    path = local_model_path(model_uri, dst_path)
    conf = Model.load(path).flavors.get(FLAVOR)
    if conf is None:
        raise InvalidValue(f"Model at {model_uri!r} has no pytorch flavor")
    return _load(path, conf, allow_pickle)


def _load(model_dir: Path, conf: dict[str, Any], allow_pickle: bool | None) -> Any:
    import io

    data = trust.inside(model_dir, conf.get("model_data", DATA), "model_data")
    if (data / PICKLE_FILE).exists():
        return _unpickle(model_dir, data, conf, allow_pickle)
    import torch

    from gitml.models import pt2

    file = data / PT2_FILE
    if not file.is_file():
        raise InvalidValue(f"Model at {model_dir} has neither {DATA}/{PT2_FILE} nor {DATA}/{PICKLE_FILE}")
    content = file.read_bytes()  # read once: torch loads the bytes that were checked
    if not trust.opted_in(allow_pickle):  # whoever opts in trusts the file to run code anyway
        pt2.check_archive(file, content)
    return torch.export.load(io.BytesIO(content)).module()


def _unpickle(model_dir: Path, data: Path, conf: dict[str, Any], allow_pickle: bool | None) -> Any:
    import io

    allowed = trust.opted_in(allow_pickle)
    content = trust.read(data / PICKLE_FILE, allowed, "it is a pickle (serialization_format='pickle')")
    info = data / PICKLE_MODULE_INFO
    module = info.read_text().strip() if info.is_file() else PICKLE_MODULE
    if module not in _KNOWN_PICKLE_MODULES:
        raise InvalidValue(f"{info} names pickle module {module!r}; gitml reads only {sorted(_KNOWN_PICKLE_MODULES)}")
    if conf.get("code"):
        sys.path.insert(0, str(trust.code_path(model_dir, conf["code"], allowed)))
    import torch

    # A TorchScript archive in model.pth is dispatched to torch.jit.load by torch.load.
    model = torch.load(io.BytesIO(content), map_location="cpu", weights_only=False)
    model.eval()
    return model


def _as_array(example: Any) -> Any:
    """A tensor example as a numpy array (its JSON and signature are then MLflow's ndarray ones)."""
    if example is None or type(example).__module__.split(".")[0] != "torch":
        return example
    return example.detach().cpu().numpy()


def _check_pt2_input(model: Any, example: Any) -> None:
    import numpy as np
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidValue("serialization_format='pt2' cannot export a TorchScript module; "
                           "use serialization_format='pickle'")
    if not isinstance(example, np.ndarray):
        raise InvalidValue(
            "serialization_format='pt2' needs an input_example (a numpy array or tensor): the model is "
            "traced on it by torch.export. Pass one, or use serialization_format='pickle' "
            "(which runs code when loaded: on another machine it loads only with allow_pickle=True).")


def _dynamic_dims(example: Any, signature: ModelSignature | None) -> dict[int, Any]:
    """The dimensions the signature leaves open (-1): they stay dynamic in the exported graph."""
    from torch.export import Dim

    if signature is None or signature.inputs is None or not signature.inputs.is_tensor:
        raise InvalidValue("serialization_format='pt2' needs a tensor signature (as inferred from a numpy "
                           "input_example); this one has column inputs. Use serialization_format='pickle'.")
    shape = signature.inputs.specs[0]["tensor-spec"]["shape"]
    dynamic = {i: Dim.AUTO for i, size in enumerate(shape) if size == -1}
    for i in dynamic:
        if i < example.ndim and example.shape[i] < 2:
            # torch.export turns a size-1 dimension into a constant, whatever the signature says.
            raise InvalidValue(f"input_example has size {example.shape[i]} in dimension {i}, which the "
                               "signature leaves open: torch.export would fix it. Pass an input_example "
                               "with at least 2 rows.")
    return dynamic


def _predict_eval(model: Any, example: Any) -> Any:
    """The model's output on ``example`` in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        return _TorchPyfunc(model).predict(example)
    finally:
        model.train(was_training)


def _export(model: Any, example: Any, dynamic: dict[int, Any], file: Path) -> None:
    import torch

    was_training = model.training
    model.eval()
    try:
        program = torch.export.export(model, (torch.from_numpy(example),), dynamic_shapes=[dynamic or None])
    finally:
        model.train(was_training)
    torch.export.save(program, file)


def _pickle(model: Any, data: Path) -> None:
    """Write ``model.pth`` and record it as trusted (it loads here without the opt-in)."""
    import io
    import pickle
    import types

    import cloudpickle
    import torch

    (data / PICKLE_MODULE_INFO).write_text(PICKLE_MODULE)
    buffer = io.BytesIO()
    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, buffer)
    else:
        # What MLflow's pickle module is: cloudpickle's Pickler (classes defined in
        # __main__ are stored by value), the standard Unpickler.
        module = types.SimpleNamespace(Pickler=cloudpickle.Pickler, Unpickler=pickle.Unpickler,
                                       load=pickle.load, __name__=PICKLE_MODULE)
        torch.save(model, buffer, pickle_module=module)
    content = buffer.getvalue()
    (data / PICKLE_FILE).write_bytes(content)
    trust.record([(trust.PICKLE, content)])


class _TorchPyfunc:
    """pyfunc predict as MLflow's ``_PyTorchWrapper``: a DataFrame in (as float32) gives a
    DataFrame out on the same index; an ndarray in gives an ndarray out."""

    def __init__(self, model: Any) -> None:
        self.pytorch_model = model

    def get_raw_model(self) -> Any:
        return self.pytorch_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd
        import torch

        if isinstance(data, pd.DataFrame):
            array = data.to_numpy(dtype=np.float32)
        elif isinstance(data, np.ndarray):
            array = data
        else:
            raise InvalidValue(f"A pytorch model predicts on a pandas DataFrame or a numpy array, "
                               f"not {type(data).__name__}")
        if not array.flags.writeable:  # torch.from_numpy wants memory it may write (pandas 3 hands out read-only)
            array = array.copy()
        with torch.no_grad():
            preds = self.pytorch_model(torch.from_numpy(array), **(params or {}))
        if not isinstance(preds, torch.Tensor):
            raise InvalidValue(f"Expected the model to return one tensor, got {type(preds).__name__}")
        out = preds.cpu().numpy()
        return pd.DataFrame(out, index=data.index) if isinstance(data, pd.DataFrame) else out


def _load_pyfunc(data_path: str, meta: Model | None = None, model_dir: Path | None = None,
                 allow_pickle: bool | None = None) -> Any:
    model_dir = model_dir or Path(data_path).parent
    conf = (meta.flavors.get(FLAVOR) if meta else None) or {"model_data": Path(data_path).name}
    return _TorchPyfunc(_load(model_dir, conf, allow_pickle))
