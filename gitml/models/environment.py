"""A model's environment files, from MLflow's arguments: ``requirements.txt``, ``python_env.yaml``, ``conda.yaml``.

Every flavor's ``save_model``/``log_model`` takes MLflow's three ways to say
what a model needs (at most one of them):

- nothing: the flavor's own packages, pinned to the installed versions;
- ``pip_requirements``: exactly these requirements (a list of strings, or
  the path of a requirements file);
- ``extra_pip_requirements``: the flavor's pinned packages plus these;
- ``conda_env``: this conda environment (a dict, or the path of a YAML
  file), written as ``conda.yaml``; its ``pip`` list becomes
  ``requirements.txt``.

As in MLflow, ``-r other.txt`` lines are read in (relative to the file that
names them, or the working directory for a list), and ``-c constraints.txt``
lines are collected into the model's ``constraints.txt``, which
``requirements.txt`` then names. Unlike MLflow, gitml does not add
``mlflow==<version>`` to requirements you give: it writes what you asked for.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue

REQUIREMENTS = "requirements.txt"
CONSTRAINTS = "constraints.txt"
PYTHON_ENV = "python_env.yaml"
CONDA_ENV = "conda.yaml"


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def installed_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class EnvOptions:
    """MLflow's environment arguments to ``save_model``/``log_model`` (at most one is given)."""

    pip_requirements: list[str] | str | None = None
    extra_pip_requirements: list[str] | str | None = None
    conda_env: dict[str, Any] | str | None = None

    def check(self) -> None:
        """Raises InvalidValue when more than one is given (MLflow refuses that too)."""
        given = [n for n in ("conda_env", "pip_requirements", "extra_pip_requirements") if getattr(self, n) is not None]
        if len(given) > 1:
            raise InvalidValue(f"Only one of conda_env, pip_requirements and extra_pip_requirements can be "
                               f"given; got {' and '.join(given)}")


def pinned(packages: list[str]) -> list[str]:
    """``dist==<installed version>`` for each package (unpinned when not installed)."""
    pins = []
    for dist in packages:
        # A local version label (torch's "+cpu") is not on PyPI; pin the public
        # version, as MLflow means to.
        ver = (installed_version(dist) or "").partition("+")[0]
        pins.append(f"{dist}=={ver}" if ver else dist)
    return pins


def write_environment(directory: Path, packages: list[str], options: EnvOptions | None = None) -> list[str]:
    """Write requirements.txt (and constraints.txt), python_env.yaml and conda.yaml.

    ``packages`` are the flavor's defaults, pinned to the installed versions
    unless ``options`` says otherwise. Returns the requirement lines.

    Raises:
        InvalidValue: more than one option given, a requirements or conda
            file that cannot be read, or a conda env that is not a mapping.
    """
    import yaml

    options = options or EnvOptions()
    options.check()
    constraints: list[str] = []
    conda: dict[str, Any] | None = None
    if options.conda_env is not None:
        conda = _conda_env(options.conda_env)
        reqs, constraints = parse_requirements(_conda_pip(conda))
    elif options.pip_requirements is not None:
        reqs, constraints = parse_requirements(options.pip_requirements)
    elif options.extra_pip_requirements is not None:
        extra, constraints = parse_requirements(options.extra_pip_requirements)
        reqs = pinned(packages) + extra
    else:
        reqs = pinned(packages)
    reqs = deduplicate(reqs)
    lines = reqs + ([f"-c {CONSTRAINTS}"] if constraints else [])
    if constraints:
        (directory / CONSTRAINTS).write_text("\n".join(constraints) + "\n")
    (directory / REQUIREMENTS).write_text("".join(f"{line}\n" for line in lines))
    build = [f"{d}=={v}" for d in ("pip", "setuptools", "wheel") if (v := installed_version(d))]
    (directory / PYTHON_ENV).write_text(yaml.safe_dump(
        {"python": python_version(), "build_dependencies": build, "dependencies": [f"-r {REQUIREMENTS}"]},
        sort_keys=False))
    if conda is None:
        conda = {"channels": ["conda-forge"], "dependencies": [f"python={python_version()}", "pip", {"pip": lines}],
                 "name": "mlflow-env"}
    else:
        conda = _with_pip(conda, lines)
    (directory / CONDA_ENV).write_text(yaml.safe_dump(conda, sort_keys=False))
    return lines


def deduplicate(requirements: list[str]) -> list[str]:
    """One line per package (and marker), as MLflow writes: ``["pandas==2.1", "pandas>=1.0"]`` gives
    ``["pandas==2.1,>=1.0"]``, extras merged, in first-seen order. Lines that are not PEP 508
    requirements (URLs, paths, options) stay as they are, once."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet

    merged: dict[Any, Any] = {}
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            merged.setdefault(line, line)
            continue
        key = (req.name.lower().replace("_", "-"), str(req.marker or ""))
        seen = merged.get(key)
        if seen is not None:
            if seen.specifier and req.specifier and seen.specifier != req.specifier:
                req.specifier = SpecifierSet(f"{seen.specifier},{req.specifier}")
            elif seen.specifier and not req.specifier:
                req.specifier = seen.specifier
            req.extras = set(seen.extras) | set(req.extras)
        merged[key] = req
    return [str(r) for r in merged.values()]


def parse_requirements(requirements: list[str] | str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """(requirements, constraints) from a list of requirement strings or a requirements file's path.

    Comments, blank lines and line continuations are handled as pip does;
    ``-r file`` is read in, ``-c file`` goes to the constraints.

    Raises:
        InvalidValue: a file that cannot be read, or something that is neither a path nor a list of strings.
    """
    if isinstance(requirements, (str, os.PathLike)):
        path = Path(requirements)
        return _parse(_read_lines(path, "requirements"), path.parent, False, set())
    if not isinstance(requirements, (list, tuple)) or not all(isinstance(r, str) for r in requirements):
        raise InvalidValue(f"pip requirements must be a list of strings or the path of a requirements file, "
                           f"not {type(requirements).__name__}")
    return _parse(list(requirements), Path.cwd(), False, set())


def _parse(lines: list[str], base: Path, constraint: bool, seen: set[Path]) -> tuple[list[str], list[str]]:
    reqs: list[str] = []
    cons: list[str] = []
    for line in _logical_lines(lines):
        option, _, rest = line.partition(" ")
        if option in ("-r", "--requirement", "-c", "--constraint") and rest.strip():
            path = base / rest.strip()
            if path.resolve() in seen:
                raise InvalidValue(f"Requirements file {str(path)!r} includes itself")
            nested_constraint = constraint or option in ("-c", "--constraint")
            r, c = _parse(_read_lines(path, "constraints" if nested_constraint else "requirements"),
                          path.parent, nested_constraint, seen | {path.resolve()})
            reqs += r
            cons += c
        elif constraint:
            cons.append(line)
        else:
            reqs.append(line)
    return reqs, cons


def _logical_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            line = ""
        elif " #" in line:
            line = line.split(" #", 1)[0].rstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append(line)
    if pending.strip():
        out.append(pending.strip())
    return out


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError as e:
        raise InvalidValue(f"Cannot read {what} file {str(path)!r}: {e.strerror}") from e


def _conda_env(conda_env: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(conda_env, (str, os.PathLike)):
        import yaml

        from gitml import safeyaml

        text = "\n".join(_read_lines(Path(conda_env), "conda environment"))
        try:
            conda_env = safeyaml.load(text, f"conda environment {str(conda_env)!r}")
        except (yaml.YAMLError, ValueError) as e:
            raise InvalidValue(f"Conda environment file {str(conda_env)!r} is not valid YAML: {e}") from e
    if not isinstance(conda_env, dict):
        raise InvalidValue(f"conda_env must be a mapping or the path of a conda YAML file, not "
                           f"{type(conda_env).__name__}")
    return dict(conda_env)


def _conda_pip(conda: dict[str, Any]) -> list[str]:
    deps = conda.get("dependencies") or []
    for dep in deps if isinstance(deps, list) else []:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            return [str(r) for r in dep["pip"]]
    return []


def _with_pip(conda: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    """The conda env with its pip list replaced by ``lines`` (so a constraints file is named there too)."""
    deps = list(conda.get("dependencies") or [])
    found = False
    for i, dep in enumerate(deps):
        if isinstance(dep, dict) and "pip" in dep:
            deps[i] = {**dep, "pip": lines}
            found = True
    if not found and lines:
        deps += ["pip", {"pip": lines}] if "pip" not in deps else [{"pip": lines}]
    return {**conda, "dependencies": deps}
