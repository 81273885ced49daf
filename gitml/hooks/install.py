"""Installing gitml's hook scripts next to the user's own hooks, and taking them out again.

A hook that is already there is never overwritten: it is renamed to
``<name>.gitml-chained`` (a rename keeps its bytes, mode and timestamps),
and gitml's script runs it first with the same arguments and stdin.
Uninstalling removes gitml's script and renames the chained hook back, so
the hooks directory is as it was. gitml's scripts are recognised by their
``# gitml-hook: <name>`` line.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from gitml.errors import InvalidValue
from gitml.hooks import HOOK_NAMES
from gitml.store.gitcli import hooks_dir

MARKER = b"# gitml-hook: "
CHAINED_SUFFIX = ".gitml-chained"
PYTHON_PLACEHOLDER = b"@GITML_PYTHON@"
MODE = 0o755


@dataclass(frozen=True)
class HookChange:
    """What install or uninstall did to one hook."""

    name: str
    path: str
    action: str  # installed, updated, unchanged, removed, restored, absent, conflict
    chained: str | None = None  # the user's hook gitml's script runs first
    message: str = ""


@dataclass(frozen=True)
class HookStatus:
    """One hook as ``gitml hooks status`` reports it."""

    name: str
    path: str
    state: str  # installed, outdated (an older gitml's script), absent, other (not gitml's)
    chained: str | None
    python: str | None  # the interpreter gitml's script calls
    python_exists: bool


def check_names(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Raises: InvalidValue: a name that is not a hook gitml installs."""
    for name in names:
        if name not in HOOK_NAMES:
            raise InvalidValue(f"Unknown hook {name!r}: gitml installs {', '.join(HOOK_NAMES)}")
    return tuple(names) or HOOK_NAMES


def template(name: str) -> bytes:
    """The hook script as shipped in the package (``gitml/hooks/scripts/<name>``)."""
    from importlib.resources import files

    return files("gitml.hooks").joinpath("scripts", name).read_bytes()


def script(name: str, python: str) -> bytes:
    """The hook script for ``name``, calling gitml through the interpreter ``python``."""
    return template(name).replace(PYTHON_PLACEHOLDER, shlex.quote(python).encode())


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4096)
    except OSError:  # a broken symlink, a directory: not gitml's
        return b""


def is_gitml_hook(path: Path, name: str) -> bool:
    """True if ``path`` is gitml's script for hook ``name``."""
    return (b"\n" + MARKER + name.encode() + b"\n") in _head(path)


def embedded_python(path: Path) -> str | None:
    """The interpreter a gitml hook script calls (its ``GITML_PYTHON=`` line)."""
    for line in _head(path).decode(errors="replace").splitlines():
        if line.startswith("GITML_PYTHON="):
            words = shlex.split(line[len("GITML_PYTHON=") :])
            return words[0] if words else None
    return None


def _write(path: Path, content: bytes) -> None:
    """Replace ``path`` with an executable file holding ``content``, atomically."""
    tmp = path.with_name(f".{path.name}.gitml-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, MODE)  # whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _chained(path: Path) -> Path:
    return path.with_name(path.name + CHAINED_SUFFIX)


def install(repo_path: str | Path, names: tuple[str, ...] = HOOK_NAMES,
            python: str | None = None) -> list[HookChange]:
    """Install gitml's hooks into the repository's hooks directory, chaining the hooks found there.

    Idempotent: a hook that is already gitml's is rewritten only if its
    script changed (another interpreter, a newer gitml).

    Raises:
        NotARepository, InvalidValue (unknown hook name, no interpreter path).
    """
    names = check_names(names)
    python = python or sys.executable
    if not python:
        raise InvalidValue("Cannot tell which Python runs gitml (sys.executable is empty): nothing installed")
    directory = hooks_dir(repo_path)
    directory.mkdir(parents=True, exist_ok=True)
    changes = []
    for name in names:
        path, chained = directory / name, _chained(directory / name)
        content = script(name, python)
        kept = str(chained) if os.path.lexists(chained) else None
        if not os.path.lexists(path):
            _write(path, content)
            changes.append(HookChange(name, str(path), "installed", kept))
        elif is_gitml_hook(path, name):
            same = path.read_bytes() == content and (path.stat().st_mode & 0o777) == MODE
            if not same:
                _write(path, content)
            changes.append(HookChange(name, str(path), "unchanged" if same else "updated", kept))
        elif kept is not None:
            changes.append(HookChange(
                name, str(path), "conflict", kept,
                f"{path} is not gitml's hook and {chained} exists already (left by an earlier install "
                f"whose hook was replaced since?); move one of them out of the way and install again"))
        else:
            os.rename(path, chained)  # the same inode: content, mode and times are kept
            try:
                _write(path, content)
            except BaseException:
                os.rename(chained, path)
                raise
            changes.append(HookChange(name, str(path), "installed", str(chained)))
    return changes


def uninstall(repo_path: str | Path, names: tuple[str, ...] = HOOK_NAMES) -> list[HookChange]:
    """Remove gitml's hooks and put the chained hooks back where they were.

    A hook that is not gitml's is never touched.

    Raises:
        NotARepository, InvalidValue (unknown hook name).
    """
    names = check_names(names)
    directory = hooks_dir(repo_path)
    changes = []
    for name in names:
        path, chained = directory / name, _chained(directory / name)
        ours = os.path.lexists(path) and is_gitml_hook(path, name)
        has_chained = os.path.lexists(chained)
        if os.path.lexists(path) and not ours:
            if has_chained:
                changes.append(HookChange(
                    name, str(path), "conflict", str(chained),
                    f"{path} is not gitml's hook (something replaced it), so {chained} was left where it is; "
                    "move it back by hand if you want it"))
            else:
                changes.append(HookChange(name, str(path), "absent"))
            continue
        if ours:
            path.unlink()
        if has_chained:
            os.rename(chained, path)
            changes.append(HookChange(name, str(path), "restored", str(chained)))
        else:
            changes.append(HookChange(name, str(path), "removed" if ours else "absent"))
    return changes


def status(repo_path: str | Path, names: tuple[str, ...] = HOOK_NAMES) -> list[HookStatus]:
    """The state of each of gitml's hooks in the repository's hooks directory.

    Raises:
        NotARepository, InvalidValue (unknown hook name).
    """
    names = check_names(names)
    directory = hooks_dir(repo_path)
    out = []
    for name in names:
        path, chained = directory / name, _chained(directory / name)
        python = None
        if not os.path.lexists(path):
            state = "absent"
        elif is_gitml_hook(path, name):
            python = embedded_python(path)
            state = "installed" if python and path.read_bytes() == script(name, python) else "outdated"
        else:
            state = "other"
        out.append(HookStatus(name, str(path), state, str(chained) if os.path.lexists(chained) else None,
                              python, bool(python) and os.access(python, os.X_OK)))  # type: ignore[arg-type]
    return out
