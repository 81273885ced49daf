"""Environments for ``gitml run``: the current interpreter, or a cached virtualenv.

``local`` runs the entry point with the interpreter running gitml (its
directory first on PATH, so ``python`` in a command template is that one).

``virtualenv`` and ``uv`` build a virtual environment from the project's
``python_env.yaml`` (MLflow's format: ``python``, ``build_dependencies``,
``dependencies``), or from a ``requirements.txt`` at the project root, and
cache it under ``$XDG_CACHE_HOME/gitml/envs/<hash>`` keyed by the Python
version, the env file and the requirement files it names. A second run with
the same files reuses it. The environment is built in a temporary directory
and renamed into place, so two runs building the same one at once both end
up with a complete environment.

gitml itself is made importable inside the environment (code that calls
``gitml.start_run()`` logs into the project's run): a ``.pth`` file appends
the site-packages gitml runs from after the environment's own, so the
project's pinned packages win.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.errors import GitmlError

MANAGERS = ("local", "virtualenv", "uv")


class EnvError(GitmlError):
    """The project's environment cannot be made here."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


@dataclass(frozen=True)
class Env:
    """Where to run: PATH entries to put first, and the interpreter."""

    manager: str
    python: str
    bin_dir: str
    cached: bool = False

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env["PATH"] = self.bin_dir + os.pathsep + base.get("PATH", "")
        if self.manager != "local":
            env["VIRTUAL_ENV"] = str(Path(self.bin_dir).parent)
            env.pop("PYTHONHOME", None)
        return env


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gitml" / "envs"


def prepare(manager: str, project_dir: Path, python_env: str | None, declared: str | None) -> Env:
    """The environment to run a project in.

    ``python_env`` is the project's python_env.yaml path (relative), if any;
    ``declared`` the env kind its MLproject declares (python_env, conda_env,
    docker_env) or None.

    Raises:
        EnvError: conda/docker projects without ``--env-manager local``, a
        Python version not on this machine, a failed install.
    """
    if manager not in MANAGERS:
        raise EnvError(f"Unknown env manager {manager!r}: use one of {', '.join(MANAGERS)}")
    if manager == "local":
        return Env("local", sys.executable, str(Path(sys.executable).parent))
    if declared in ("conda_env", "docker_env"):
        tool = "conda" if declared == "conda_env" else "docker"
        found = shutil.which(tool)
        why = (f"{tool} is not installed on this machine" if not found
               else f"gitml run does not build {tool} environments")
        raise EnvError(f"This project declares a {declared} and {why}. Run it with --env-manager local to use "
                       "the current Python environment instead.")
    spec = _python_env(project_dir, python_env)
    key = _key(manager, spec)
    target = cache_root() / key
    python = target / "bin" / "python"
    if python.exists():
        return Env(manager, str(python), str(python.parent), cached=True)
    _build(manager, spec, target)
    return Env(manager, str(python), str(python.parent), cached=False)


def _python_env(project_dir: Path, python_env: str | None) -> dict[str, Any]:
    """{python, build_dependencies, dependencies, base} from python_env.yaml or requirements.txt."""
    import yaml

    if python_env:
        path = project_dir / python_env
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as e:
            raise EnvError(f"Cannot read {python_env}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise EnvError(f"{python_env} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise EnvError(f"{python_env} must be a mapping with python, build_dependencies and dependencies")
        deps = data.get("dependencies") or []
        build = data.get("build_dependencies") or []
        if not all(isinstance(d, str) for d in [*deps, *build]):
            raise EnvError(f"{python_env}: dependencies and build_dependencies must be lists of strings")
        return {"python": str(data.get("python") or _current()), "build": build, "deps": deps,
                "base": path.parent}
    req = project_dir / "requirements.txt"
    return {"python": _current(), "build": [], "deps": ["-r", "requirements.txt"] if req.is_file() else [],
            "base": project_dir}


def _current() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"


def _requirement_files(spec: dict[str, Any]) -> list[Path]:
    files, deps = [], list(spec["deps"])
    for i, d in enumerate(deps):
        name = d[2:].strip() if d.startswith("-r") and len(d) > 2 else (deps[i + 1] if d == "-r" and i + 1 < len(deps) else None)
        if name:
            files.append(spec["base"] / name)
    return files


def _key(manager: str, spec: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([manager, spec["python"], spec["build"], spec["deps"], sys.executable]).encode())
    for f in _requirement_files(spec):
        try:
            h.update(f.read_bytes())
        except OSError:
            raise EnvError(f"Requirements file {f.name} named in the environment does not exist") from None
    return h.hexdigest()[:24]


def _interpreter(version: str) -> str:
    """An interpreter for ``version`` (major.minor must match) on this machine."""
    want = ".".join(version.split(".")[:2])
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if want == have:
        return sys.executable
    found = shutil.which(f"python{want}")
    if found is None:
        raise EnvError(f"The project asks for Python {version} and there is no python{want} on this machine; "
                       "install it, or run with --env-manager uv (which can download Pythons) or --env-manager local")
    return found


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        raise EnvError(f"{what} failed:\n{tail}")


def _build(manager: str, spec: dict[str, Any], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        if manager == "uv":
            uv = shutil.which("uv")
            if uv is None:
                raise EnvError("--env-manager uv needs uv on PATH (pip install uv), or use --env-manager virtualenv")
            _run([uv, "venv", "--quiet", "--python", spec["python"], str(tmp)], spec["base"], "uv venv")
            install = [uv, "pip", "install", "--quiet", "--python", str(tmp / "bin" / "python")]
        else:
            _run([_interpreter(spec["python"]), "-m", "venv", str(tmp)], spec["base"], "python -m venv")
            install = [str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if spec["build"]:
            _run([*install, *spec["build"]], spec["base"], "Installing build_dependencies")
        if spec["deps"]:
            _run([*install, *spec["deps"]], spec["base"], "Installing dependencies")
        _link_gitml(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "bin" / "python").exists():  # another run finished the same env first: use theirs
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _link_gitml(venv_dir: Path) -> None:
    """Make the running gitml (and what it imports) importable in the venv, after the venv's own packages."""
    same_python = (venv_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}").is_dir()
    ours = sysconfig.get_paths()["purelib"] if same_python else ""  # compiled packages only fit the same Python
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    for site in venv_dir.glob("lib/python*/site-packages"):
        (site / "zz_gitml.pth").write_text(f"{package_root}\n{ours}\n")
