"""What every flavor's ``save_model`` shares: the directory, MLflow's common arguments, the MLmodel.

Each flavor writes its own model file inside ``with new_model_dir(path) as
out:`` and ends with ``finish(...)``, which writes the rest as MLflow does:
the signature (inferred from the input example), the example files, the
``code/`` directory (``code_paths``), the environment files
(``pip_requirements``, ``extra_pip_requirements``, ``conda_env``), the
``metadata`` mapping and the MLmodel file. Code files are recorded as
trusted (``trust.record``): a model saved here loads here without the opt-in.

MLflow arguments that change nothing for a model kept in git are accepted
and ignored (``IGNORED``); any other unknown argument is an error, never
silently dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models import trust
from gitml.models.environment import EnvOptions, write_environment
from gitml.models.mlmodel import Model, save_input_example
from gitml.models.signature import ModelSignature, signature_from_example

CODE_DIR = "code"

#: MLflow ``save_model``/``log_model`` arguments with no effect on a model kept in git:
#: registration is synchronous (``await_registration_for``); ``mlflow_model`` is a
#: template object; ``step``, ``prompts``, ``resources``, ``auth_policy`` and
#: ``streamable`` describe MLflow server, Databricks or GenAI features gitml does not have.
IGNORED = frozenset({"await_registration_for", "mlflow_model", "step", "prompts", "resources", "auth_policy",
                     "streamable", "example_no_conversion"})


def check_kwargs(kwargs: dict[str, Any], where: str) -> None:
    """Refuse arguments ``where`` does not take (MLflow's ``IGNORED`` ones pass, and so does any
    argument left at MLflow's default, None or False).

    Raises:
        InvalidValue: naming the first unknown argument.
    """
    unknown = sorted(k for k, v in kwargs.items() if k not in IGNORED and v is not None and v is not False)
    if unknown:
        raise InvalidValue(f"{where} does not take argument {unknown[0]!r} in gitml "
                           "(see docs/models.md, 'Arguments every flavor takes')")


@dataclass(frozen=True)
class SaveOptions:
    """MLflow's arguments that every flavor's ``save_model`` takes besides the model itself."""

    code_paths: list[str] | None = None
    env: EnvOptions = field(default_factory=EnvOptions)
    metadata: dict[str, Any] | None = None

    @classmethod
    def of(cls, code_paths: list[str] | None = None, conda_env: Any = None, pip_requirements: Any = None,
           extra_pip_requirements: Any = None, metadata: dict[str, Any] | None = None) -> SaveOptions:
        """Checked options.

        Raises:
            InvalidValue: more than one environment option, code_paths not a list of paths,
                metadata not a mapping.
        """
        env = EnvOptions(pip_requirements, extra_pip_requirements, conda_env)
        env.check()
        if code_paths is not None and (isinstance(code_paths, (str, os.PathLike))
                                       or not all(isinstance(p, (str, os.PathLike)) for p in code_paths)):
            raise InvalidValue(f"code_paths must be a list of paths, not {code_paths!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidValue(f"metadata must be a mapping, not {type(metadata).__name__}")
        return cls([os.fspath(p) for p in code_paths] if code_paths else None, env, metadata)


@contextlib.contextmanager
def new_model_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The directory a flavor's ``save_model`` writes into, undone if the save fails.

    Every flavor saves inside ``with new_model_dir(path) as out:``. If the
    block raises, a directory this call created is removed, and one that was
    there already (empty) is emptied again, so a retry into the same path
    works. Nothing that existed before the call is removed.

    Raises:
        InvalidValue: the path exists and is not an empty directory.
    """
    out = Path(path)
    existed = out.exists()
    if existed and (not out.is_dir() or any(out.iterdir())):
        raise InvalidValue(f"Path {str(out)!r} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    saved = False
    try:
        yield out
        saved = True
    finally:
        if not saved:
            _undo(out, existed)


def _undo(out: Path, existed: bool) -> None:
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def copy_code(out: Path, code_paths: list[str] | None) -> str | None:
    """Copy ``code_paths`` (files or directories) into ``out/code``, as MLflow does; return ``"code"``.

    Raises:
        InvalidValue: a path that does not exist.
    """
    if not code_paths:
        return None
    (out / CODE_DIR).mkdir()
    for src in code_paths:
        source = Path(src)
        if not source.exists():
            raise InvalidValue(f"code_paths entry {src!r} does not exist")
        dest = out / CODE_DIR / source.name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)
    return CODE_DIR


def finish(out: Path, meta: Model, signature: ModelSignature | None, input_example: Any, predict: Any,
           packages: list[str], options: SaveOptions | None = None) -> None:
    """Signature (inferred from the example when not given), example, code, environment, metadata, MLmodel.

    A ``code`` directory is named in every flavor of the MLmodel (as MLflow
    does) and its files are recorded as this machine's.
    """
    options = options or SaveOptions()
    if signature is None and input_example is not None:
        output = None
        if predict is not None:
            try:
                output = predict(input_example)
            except Exception:  # noqa: BLE001 - an output schema is optional; MLflow also skips it
                output = None
        signature = signature_from_example(input_example, output)
    meta.signature = signature
    if input_example is not None:
        save_input_example(out, input_example, meta)
    code = copy_code(out, options.code_paths)
    if code:
        for conf in meta.flavors.values():
            conf["code"] = code
        trust.record([(trust.CODE, f.read_bytes()) for f in sorted((out / code).rglob("*")) if f.is_file()])
    write_environment(out, packages, options.env)
    if options.metadata:
        meta.metadata = dict(options.metadata)
    meta.save(out)
