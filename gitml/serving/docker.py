"""``gitml build-docker``: a Docker build context that serves one model with nothing else.

The context holds the model's files, gitml's own package, requirements
pinned to the versions installed here (the model's and what serving
needs), an ``entrypoint.sh`` that runs ``gitml serve`` on the model, and a
Dockerfile. ``docker build DIR`` needs no git repository and no network
access beyond the Python package index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue

#: What ``gitml serve`` imports at run time, besides the model's own requirements.
SERVING_PACKAGES = ("click", "pyyaml", "pandas", "numpy", "cloudpickle", "gunicorn", "gunicorn_h1c", "semver", "pygit2")

ENTRYPOINT = """#!/bin/sh
# Serve the model in this directory with gitml's scoring server (MLflow's protocol).
# HOST, PORT and WORKERS override the defaults.
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m gitml serve "$HERE/model" --host "${HOST:-0.0.0.0}" --port "${PORT:-8080}" \\
    --workers "${WORKERS:-2}"
"""

DOCKERFILE = """FROM python:{py}-slim
WORKDIR /app
COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt
COPY gitml /app/gitml
COPY model /app/model
COPY entrypoint.sh model-info.json /app/
RUN chmod +x /app/entrypoint.sh && useradd --create-home serve
USER serve
ENV PORT=8080 WORKERS=2 PYTHONUNBUFFERED=1{env}
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request, os; urllib.request.urlopen(f'http://127.0.0.1:{{os.environ[\\"PORT\\"]}}/ping')"
ENTRYPOINT ["/app/entrypoint.sh"]
"""


def _pinned(name: str) -> str | None:
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return None


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
#: Never pinned from a model's requirements: the image serves with gitml, not MLflow.
_LEFT_OUT = ("mlflow", "gitml")


def _normalise(name: str) -> str:
    """A package name as PEP 503 compares them (``Scikit_Learn`` is ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str | None:
    """The normalised package name of a requirements.txt line (any specifier, extras, markers, URL)."""
    from packaging.requirements import InvalidRequirement, Requirement  # packaging comes with dvc

    try:
        return _normalise(Requirement(line).name)
    except InvalidRequirement:  # pip may still read it (an editable path, a hash option): the leading name
        m = _NAME_RE.match(line)
        return _normalise(m.group(0)) if m else None


def requirements(model_dir: Path) -> list[str]:
    """The model's requirements plus serving's, one line per package (the model's line wins, as written).

    Packages are compared by normalised name, whatever the specifier
    (``numpy<2`` keeps serving from adding ``numpy==2.1.0``); ``mlflow`` is
    left out, and option lines (``-r``, ``--index-url``) are skipped.
    """
    lines: dict[str, str] = {}
    req = model_dir / "requirements.txt"
    if req.is_file():
        for raw in req.read_text().splitlines():
            line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()  # pip's comments: '#' at the start or after a space
            if not line or line.startswith("-"):
                continue
            name = _requirement_name(line)
            if name and name not in _LEFT_OUT:
                lines[name] = line
    for pkg in SERVING_PACKAGES:
        key = _normalise(pkg)
        if key not in lines:
            pin = _pinned(pkg)
            if pin:
                lines[key] = pin
    return [lines[k] for k in sorted(lines)]


def build_context(model_uri: str, out_dir: str | os.PathLike[str], allow_pickle: bool = False) -> Path:
    """Write the build context for ``model_uri`` into ``out_dir`` (new or empty). Returns it.

    The image has no repository, so no record of the model files this
    machine wrote (``gitml.models.trust``): a model that runs code when
    loaded (a pickle, a custom PythonModel) loads there only with the
    opt-in. ``allow_pickle`` writes it into the Dockerfile
    (``ENV GITML_ALLOW_PICKLE=1``); without it, ``docker run -e
    GITML_ALLOW_PICKLE=1`` opts in at run time.

    Raises:
        InvalidValue (out_dir is not empty), ModelNotFound and the registry's errors.
    """
    from gitml.models.uri import local_model_path, resolve

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidValue(f"{str(out)!r} exists and is not an empty directory; choose a new one")
    source = resolve(model_uri)
    with tempfile.TemporaryDirectory(prefix="gitml-docker-") as tmp:
        model_dir = local_model_path(model_uri, tmp)
        out.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copytree(model_dir, out / "model")
            package = Path(__file__).resolve().parent.parent
            shutil.copytree(package, out / "gitml", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            (out / "requirements.txt").write_text("\n".join(requirements(out / "model")) + "\n")
            entry = out / "entrypoint.sh"
            entry.write_text(ENTRYPOINT)
            entry.chmod(entry.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            py = f"{sys.version_info.major}.{sys.version_info.minor}"
            env = " GITML_ALLOW_PICKLE=1" if allow_pickle else ""
            (out / "Dockerfile").write_text(DOCKERFILE.format(py=py, env=env))
            info = {**_info(model_uri, source), "allow_pickle": bool(allow_pickle)}
            (out / "model-info.json").write_text(json.dumps(info, indent=2) + "\n")
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
    return out


def _info(model_uri: str, source: Any) -> dict[str, Any]:
    from gitml.serving.app import _describe

    info = _describe(model_uri, source)
    info.pop("path", None)
    return info
