"""MLflow's MLproject format: a project's entry points, their parameters, its environment.

A project is a directory. Its ``MLproject`` file (any case: ``mlproject``
works too) is YAML, read with ``yaml.safe_load`` only::

    name: wine
    python_env: python_env.yaml        # or conda_env: conda.yaml, or docker_env: {image: ...}
    entry_points:
      main:
        parameters:
          alpha: {type: float, default: 0.5}
          l1_ratio: {type: float, default: 0.1}
          data: path                   # shorthand: the type, no default (required)
        command: "python train.py {alpha} {l1_ratio} --data {data}"

==========  ==============================================================
``string``  the value as given (the type when none is declared)
``float``   must parse as a float (``3`` is one)
``int``     must parse as an integer (``3``, not ``3.5``)
``path``    a local path, made absolute against the directory ``gitml run``
            ran from, and it must exist (MLflow's rule). MLflow downloads
            ``s3://``-style URIs; gitml refuses them.
``uri``     kept as given if it has a scheme, else made absolute like a path
==========  ==============================================================

The command is MLflow's: the template formatted like ``str.format`` (``{{``
and ``}}`` are literal braces), every value quoted, then each parameter
the user gave that the entry point does not declare appended as ``--key
value``, in the order given. Placeholders are plain ``{name}`` only: a format
spec, ``!r`` or ``.attr`` could undo the quoting, so they are refused.
Unlike MLflow, which ``shlex.quote``s every value, a value is quoted for
where its placeholder sits (unquoted, ``'...'``, ``"..."``, ``$'...'``:
see ``gitml.projects.shell``), and a placeholder where no quoting keeps a
value literal (inside backticks, a comment, after a here-document...) is
refused when the project is read.

An entry point that is not declared, or any entry point of a project with no
MLproject, may name a ``.py`` or ``.sh`` file inside the project: it runs as
``python <file>`` / ``bash <file>`` with every parameter appended as ``--key
value``, as an argv list with no shell in between.

With no environment declared, a ``python_env.yaml``, else a ``conda.yaml``,
at the project root is the project's environment, as in MLflow. What gitml
does not follow: MLflow's ``databricks_spark_job`` and ``.R`` entry points.
"""

from __future__ import annotations

import os
import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from gitml.errors import InvalidValue
from gitml.projects import shell

#: The parameter types MLproject files declare.
TYPES = ("float", "int", "string", "path", "uri")
#: The environment declarations; a project has at most one.
ENV_KINDS = ("python_env", "conda_env", "docker_env")
#: How a file entry point runs, by extension.
SCRIPT_RUNNERS = {".py": "python", ".sh": "bash"}
#: The env files MLflow picks up when the MLproject declares none, in order.
DEFAULT_ENV_FILES = (("python_env", "python_env.yaml"), ("conda_env", "conda.yaml"))


class ProjectError(InvalidValue):
    """The MLproject file, the entry point or a parameter value is not usable."""


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its type and its default (None: the user must give it)."""

    name: str
    type: str = "string"
    default: str | None = None

    def resolve(self, value: str, cwd: str | os.PathLike[str], where: str) -> str:
        """``value`` checked against the type; paths and scheme-less URIs made absolute.

        Raises:
            ProjectError: the value does not parse as the type, or a path is
                missing or remote.
        """
        if self.type in ("float", "int"):
            _check_number(self.type, value, f"Parameter {self.name!r} of {where}")
            return value
        if self.type == "path":
            local = _local_path(value)
            if local is None:
                raise ProjectError(
                    f"Parameter {self.name!r} of {where} is a path, and {value!r} is a remote "
                    "URI: gitml only supports local paths for path parameters (MLflow would "
                    "download it). Fetch it first, or declare the parameter as type uri to "
                    "pass the URI through."
                )
            resolved = os.path.abspath(os.path.join(cwd, local))
            if not os.path.exists(resolved):
                raise ProjectError(
                    f"Parameter {self.name!r} of {where} is a path, and {value!r} "
                    f"(looked for at {resolved}) does not exist"
                )
            return resolved
        if self.type == "uri":
            return value if urlparse(value).scheme else os.path.abspath(os.path.join(cwd, value))
        return value


@dataclass(frozen=True)
class ResolvedCommand:
    """What to run: ``argv`` with no shell, or else ``command`` under ``bash -c``.

    ``params`` holds every value as the entry point sees it (defaults filled
    in, paths absolute, then the undeclared ones), for logging as run params.
    """

    params: dict[str, str]
    command: str
    argv: list[str] | None = None


class _Piece(NamedTuple):
    """Literal template text, then the placeholder after it (if any) and its quoting context."""

    literal: str
    name: str | None = None
    context: str = ""


class _Template(NamedTuple):
    pieces: list[_Piece]
    #: Why arguments may not be appended after the template (it ends in a comment, a quote...), or None.
    no_tail: str | None


@dataclass(frozen=True)
class EntryPoint:
    """An entry point: a command template (or a script file) and its parameters."""

    name: str
    command: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    #: Where it was declared, for messages: the MLproject file, or the project directory.
    source: str = ""
    #: For a ``.py``/``.sh`` file entry point: the argv that runs it; None for a template.
    script: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        """``entry point 'main' in /path/MLproject``, for messages."""
        return (
            f"entry point {self.name!r} in {self.source}"
            if self.source
            else f"entry point {self.name!r}"
        )

    def placeholders(self) -> list[str]:
        """The parameter names the command template refers to, in order.

        Raises:
            ProjectError: the template does not parse, or a placeholder is not a
                plain ``{name}`` of a declared parameter.
        """
        if self.script is not None:
            return []
        return [piece.name for piece in self._template().pieces if piece.name is not None]

    def _template(self) -> _Template:
        """The command template in pieces, each placeholder with its quoting context.

        Raises:
            ProjectError: the template does not parse, a placeholder is not a plain
                ``{name}`` of a declared parameter, or it sits where no quoting
                keeps a value literal (``shell.Scanner`` says why).
        """
        try:
            parsed = list(string.Formatter().parse(self.command))
        except ValueError as e:
            raise ProjectError(
                f"The command of {self.where} is not a valid template ({e}); write literal "
                "braces as {{ and }}"
            ) from e
        pieces: list[_Piece] = []
        scanner = shell.Scanner()
        for literal, name, spec, conversion in parsed:
            scanner.feed(literal)
            if name is None:
                pieces.append(_Piece(literal))
                continue
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            if name == "" or name.isdigit():
                raise ProjectError(
                    f"The command of {self.where} has a positional placeholder {shown}; "
                    "name a parameter, as in {alpha}"
                )
            if spec or conversion or (name not in self.parameters and any(c in name for c in ".[")):
                raise ProjectError(
                    f"The command of {self.where} has placeholder {shown}: gitml only substitutes "
                    "plain {name} placeholders, so that every value stays shell-quoted"
                )
            if name not in self.parameters:
                declared = ", ".join(self.parameters) or "none"
                raise ProjectError(
                    f"The command of {self.where} refers to {shown}, which is not a declared "
                    f"parameter (declared: {declared}); add it under parameters"
                )
            slot = scanner.slot()
            if slot.refusal:
                raise ProjectError(
                    f"The command of {self.where} has placeholder {shown} where no quoting can keep its "
                    f"value literal: {slot.refusal}. Put it in an unquoted word, or inside '...' or \"...\""
                )
            pieces.append(_Piece(literal, name, slot.context))
        return _Template(pieces, scanner.end())

    def resolve(
        self, user_params: Mapping[str, str], cwd: str | os.PathLike[str]
    ) -> ResolvedCommand:
        """The command for these parameter values, every value shell-quoted.

        ``cwd`` is the directory ``gitml run`` ran from: relative ``path`` and
        ``uri`` values are made absolute against it.

        Raises:
            ProjectError: a required parameter is missing, a value does not
                parse as its type, or the template is broken.
        """
        template = self._template() if self.script is None else _Template([], None)
        given = {str(k): str(v) for k, v in user_params.items()}
        missing = [p for p in self.parameters.values() if p.name not in given and p.default is None]
        if missing:
            names = ", ".join(f"{p.name!r} ({p.type})" for p in missing)
            plural = "s" if len(missing) > 1 else ""
            raise ProjectError(
                f"No value for required parameter{plural} {names} of {self.where}; "
                f"give {'them' if plural else 'it'} as name=value (gitml run -P)"
            )
        params: dict[str, str] = {}
        for p in self.parameters.values():
            value = given.get(p.name, p.default)
            assert value is not None
            params[p.name] = p.resolve(value, cwd, self.where)
        extra = {k: v for k, v in given.items() if k not in self.parameters}
        params.update(extra)

        if self.script is not None:
            argv = list(self.script)
            for k, v in extra.items():
                argv += [f"--{k}", v]
            head = " ".join(shlex.quote(a) for a in self.script)
            return ResolvedCommand(params, _append(head, extra), argv)
        head = "".join(
            piece.literal + (shell.encode(params[piece.name], piece.context) if piece.name is not None else "")
            for piece in template.pieces
        )
        if extra and template.no_tail:
            raise ProjectError(
                f"Parameters {', '.join(map(repr, extra))} are not declared by {self.where}, so they would be "
                f"appended to its command as --name value, but {template.no_tail}; declare them instead"
            )
        return ResolvedCommand(params, _append(head, extra), None)


@dataclass(frozen=True)
class Project:
    """A project directory and what its MLproject file declares (nothing, if it has none)."""

    directory: Path
    name: str | None = None
    entry_points: dict[str, EntryPoint] = field(default_factory=dict)
    #: python_env.yaml / conda.yaml path relative to the project, or the docker_env mapping.
    python_env: str | None = None
    conda_env: str | None = None
    docker_env: dict[str, Any] | None = None
    #: The MLproject file, or None when the project has none.
    mlproject: Path | None = None

    @property
    def env_kind(self) -> str | None:
        """``python_env``, ``conda_env``, ``docker_env`` or None."""
        return next((kind for kind in ENV_KINDS if getattr(self, kind) is not None), None)

    def entry_point(self, name: str) -> EntryPoint:
        """The declared entry point ``name``, else the ``.py``/``.sh`` file ``name`` in the project.

        Raises:
            ProjectError: neither exists.
        """
        if name in self.entry_points:
            return self.entry_points[name]
        ext = os.path.splitext(name)[1]
        if ext in SCRIPT_RUNNERS:
            return self._script(name, SCRIPT_RUNNERS[ext])
        kinds = " or ".join(f"a {e} file" for e in SCRIPT_RUNNERS)
        if self.mlproject is None:
            scripts = self._top_level_scripts()
            found = f" (here: {', '.join(scripts)})" if scripts else ""
            raise ProjectError(
                f"{self.directory} has no MLproject file, so it has no entry point {name!r}: name "
                f"{kinds} in the project to run it directly, as in gitml run -e train.py{found}"
            )
        declared = ", ".join(self.entry_points) or "none"
        raise ProjectError(
            f"No entry point {name!r} in {self.mlproject} (declared: {declared}); "
            f"{kinds} in the project can also be named"
        )

    def _script(self, name: str, runner: str) -> EntryPoint:
        where = self.mlproject or self.directory
        if os.path.isabs(name) or name.startswith("~") or not _inside(self.directory, name):
            raise ProjectError(
                f"Entry point {name!r}: a script entry point must be a relative path inside "
                f"the project {self.directory}"
            )
        if not (self.directory / name).is_file():
            what = "not a declared entry point, and there is" if self.mlproject else "there is"
            raise ProjectError(
                f"Entry point {name!r} of {where}: {what} no file {name} in {self.directory}"
            )
        # a file named like an option would be read as one by python or bash
        arg = name if not name.startswith("-") else f"./{name}"
        return EntryPoint(name, f"{runner} {shlex.quote(arg)}", {}, str(where), (runner, arg))

    def _top_level_scripts(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return []
        return [n for n in names if os.path.splitext(n)[1] in SCRIPT_RUNNERS][:5]


def find_mlproject(directory: str | os.PathLike[str]) -> Path | None:
    """The directory's MLproject file, whatever its case; None if it has none."""
    base = Path(directory)
    for name in sorted(os.listdir(base)):
        if name.lower() == "mlproject" and (base / name).is_file():
            return base / name
    return None


def load_project(directory: str | os.PathLike[str]) -> Project:
    """The project in ``directory``: its MLproject file parsed and checked, or an empty one.

    Raises:
        ProjectError: the directory is missing, or the MLproject file is not
            valid YAML, not a mapping, or declares something wrong (named in
            the message).
    """
    base = Path(os.path.abspath(directory))
    if not base.is_dir():
        raise ProjectError(f"Project directory {base} does not exist")
    path = find_mlproject(base)
    doc = _read(path) if path is not None else {}
    where = str(path) if path is not None else str(base)

    kinds = [k for k in ENV_KINDS if k in doc]
    if len(kinds) > 1:
        raise ProjectError(
            f"{where} declares {' and '.join(kinds)}: a project declares at most one environment"
        )
    envs: dict[str, Any] = {}
    if kinds:
        kind = kinds[0]
        envs[kind] = (
            _docker_env(doc[kind], where)
            if kind == "docker_env"
            else _env_file(base, doc[kind], kind, where)
        )
    else:
        for kind, filename in DEFAULT_ENV_FILES:
            if (base / filename).is_file() and _inside(base, filename):
                envs[kind] = filename
                break

    name = doc.get("name")
    raw_eps = doc.get("entry_points")
    if raw_eps is None:
        raw_eps = {}
    if not isinstance(raw_eps, dict):
        raise ProjectError(
            f"{where}: entry_points must be a mapping of entry point names to "
            f"{{command, parameters}}, not {_kind(raw_eps)}"
        )
    entry_points = {str(k): _entry_point(str(k), v, where) for k, v in raw_eps.items()}
    return Project(base, None if name is None else str(name), entry_points, mlproject=path, **envs)


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProjectError(f"Cannot read {path}: {e}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(
            filter(None, [getattr(e, "context", None), getattr(e, "problem", None)])
        ) or str(e)
        raise ProjectError(f"{path}{at}: not valid YAML: {problem}") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ProjectError(
            f"{path} must be a YAML mapping (name, entry_points, ...), not {_kind(doc)}"
        )
    return doc


def _entry_point(name: str, raw: Any, where: str) -> EntryPoint:
    ep_where = f"entry point {name!r} in {where}"
    if not isinstance(raw, dict):
        raise ProjectError(
            f"{where}: entry point {name!r} must be a mapping with a command "
            f"(and parameters), not {_kind(raw)}"
        )
    command = raw.get("command")
    if command is None or (isinstance(command, str) and not command.strip()):
        raise ProjectError(f"{where}: entry point {name!r} has no command")
    if not isinstance(command, str):
        raise ProjectError(
            f"{where}: the command of entry point {name!r} must be a string, not {_kind(command)}"
        )
    raw_params = raw.get("parameters")
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, dict):
        raise ProjectError(
            f"{where}: the parameters of entry point {name!r} must be a mapping, "
            f"not {_kind(raw_params)}"
        )
    params = {str(k): _parameter(str(k), v, ep_where) for k, v in raw_params.items()}
    return EntryPoint(name, command, params, where)


def _parameter(name: str, raw: Any, where: str) -> Parameter:
    if isinstance(raw, str):
        ptype, default = raw, None
    elif isinstance(raw, dict):
        ptype, default = raw.get("type", "string"), raw.get("default")
    else:
        raise ProjectError(
            f"Parameter {name!r} of {where} must be a type name ({', '.join(TYPES)}) or a "
            f"mapping with type and default, not {_kind(raw)}"
        )
    if ptype not in TYPES:
        raise ProjectError(
            f"Parameter {name!r} of {where} has unknown type {ptype!r}; "
            f"the types are {', '.join(TYPES)}"
        )
    if default is not None:
        if isinstance(default, (dict, list)):
            raise ProjectError(
                f"The default of parameter {name!r} of {where} must be a single value, "
                f"not {_kind(default)}"
            )
        default = str(default)
        if ptype in ("float", "int"):
            _check_number(ptype, default, f"The default of parameter {name!r} of {where}")
    return Parameter(name, ptype, default)


def _env_file(base: Path, value: Any, kind: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(
            f"{where}: {kind} must be the path of a file in the project, not {value!r}"
        )
    if os.path.isabs(value) or value.startswith("~") or not _inside(base, value):
        raise ProjectError(
            f"{where}: {kind} {value!r} must be a relative path inside the project {base}"
        )
    if not (base / value).is_file():
        raise ProjectError(
            f"{where} declares {kind} {value!r}, but there is no such file in {base}"
        )
    return value


def _docker_env(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("image"), str) or not value["image"]:
        raise ProjectError(
            f"{where}: docker_env must be a mapping with an image, as in docker_env: {{image: "
            f"python:3.11}}"
        )
    volumes = value.get("volumes")
    if volumes and not (isinstance(volumes, list) and all(isinstance(v, str) for v in volumes)):
        raise ProjectError(
            f'{where}: docker_env volumes must be a list of strings, as in ["/data:/data"]'
        )
    environment = value.get("environment")
    if environment and not (
        isinstance(environment, list)
        and all(isinstance(v, str) or _is_pair(v) for v in environment)
    ):
        raise ProjectError(
            f"{where}: docker_env environment must be a list of variable names to copy and "
            f'[name, value] pairs to set, as in ["HOME", ["MODE", "train"]]'
        )
    return dict(value)


def _is_pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(isinstance(s, str) for s in v)


def _inside(base: Path, rel: str) -> bool:
    """Whether ``rel`` stays inside ``base``, '..' and symlinks followed."""
    root = os.path.realpath(base)
    try:
        target = os.path.realpath(os.path.join(root, rel))
    except ValueError:  # an embedded NUL
        return False
    return target != root and os.path.commonpath([root, target]) == root


def _check_number(ptype: str, value: str, what: str) -> None:
    # Python's own parsers, minus what they forgive that a command line should not see
    ok = value.isascii() and value == value.strip() and "_" not in value
    if ok:
        try:
            (int if ptype == "int" else float)(value)
        except ValueError:
            ok = False
    if not ok:
        hint = " (a whole number)" if ptype == "int" else ""
        raise ProjectError(f"{what} must be of type {ptype}{hint}, and {value!r} is not")


def _local_path(value: str) -> str | None:
    """The local path ``value`` names (plain path or ``file:///...``), None for a remote URI."""
    parsed = urlparse(value)
    if not parsed.scheme:
        return value
    if parsed.scheme == "file" and not parsed.netloc:
        from urllib.request import url2pathname

        return url2pathname(parsed.path)
    return None


def _append(head: str, extra: Mapping[str, str]) -> str:
    """MLflow's tail for undeclared parameters: `` --key value``, both quoted."""
    return " ".join([head, *(f"--{shlex.quote(k)} {shlex.quote(v)}" for k, v in extra.items())])


def _kind(value: Any) -> str:
    return {
        list: "a list",
        dict: "a mapping",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "empty",
    }.get(type(value), type(value).__name__)
