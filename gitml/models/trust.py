"""Model files that run code when loaded: one gate, and the files this machine wrote.

Loading a pickle (scikit-learn's ``pickle``/``cloudpickle`` formats, a
custom ``PythonModel``'s ``python_model.pkl``, PyTorch's ``model.pth``) runs
whatever code the file names, and a model's ``code`` directory goes on
``sys.path``. So every loader reads such a file's bytes once, passes them
through ``gate``, and unpickles those same bytes (no second read that could
see other content). ``gate`` lets a file through when:

- the caller opted in: ``allow_pickle=True``, else the ``allow_pickle``
  setting (``GITML_ALLOW_PICKLE=1``; from the environment only, never from
  git config, which can include a file from the work tree that a pull
  changes);
- or this machine wrote that exact content into a model, in this
  repository: ``record`` keeps, in ``.git/gitml/trusted-model-files``, an
  HMAC-SHA256 of each such file's bytes (and of its role: a pickle, code,
  or a custom model's artifact), keyed by a random per-user key in
  ``~/.config/gitml/trust-key``.

The trust file is local state under ``.git``: git never transfers it, and
``gitml pull`` moves only refs and content-addressed cache objects. The key
keeps it from being forged or carried: an entry copied from another
machine's (or another user's) ``.git``, or written by anyone without the
key, matches nothing. A file is trusted by its content, never by its name,
and a role never stands for another (an artifact this machine logged is not
thereby a trusted pickle).

Data formats with a content check of their own are checked on every load
(the opt-in skips the check): pt2 files are never recorded; a skops file is
recorded when it holds types skops does not trust by default (a forest's
trees), so the models this machine saved load here as they did before
gitml's skops defaults were narrowed to MLflow 3.17's.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import InvalidValue
from gitml.store import names

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo

log = logging.getLogger("gitml")

#: The roles a recorded file can play; an entry made for one role does not trust another.
#: ``skops``: a skops file holding types skops does not trust by default.
PICKLE, CODE, ARTIFACT, SKOPS = "pickle", "code", "artifact", "skops"
ROLES = (PICKLE, CODE, ARTIFACT, SKOPS)
OPT_IN = ("pass allow_pickle=True (--allow-pickle for gitml serve, predict and build-docker) "
          "or set GITML_ALLOW_PICKLE=1")
KEY_FILE = "gitml/trust-key"  # under $XDG_CONFIG_HOME (default ~/.config)


class UntrustedModel(InvalidValue):
    """A model file would run code when loaded, and neither the caller nor this machine vouches for it."""

    http_status = 403
    error_code = "PERMISSION_DENIED"


def refusal(file: str | os.PathLike[str], why: str, alternative: str | None = None,
            recordable: bool = True) -> UntrustedModel:
    """The error for a model file that could run code: names the file, the reason and the opt-in.

    ``recordable``: the file is of a kind this machine's record could have
    vouched for (a pickle, code, an artifact), so the message says it did not.
    """
    # Say who else it could be from: a model MLflow saved, even on this machine, is never in the record.
    origin = (", and gitml did not write it on this machine in this repository (a model MLflow or a "
              "teammate saved never is)") if recordable else ""
    instead = f"{alternative}, or " if alternative else ""
    return UntrustedModel(f"Refusing to load {file}: {why}{origin}. If you trust this model, {instead}{OPT_IN}.")


def opted_in(allow_pickle: bool | None) -> bool:
    """``allow_pickle`` if given, else the ``allow_pickle`` setting from the environment only.

    Never from git config: ``include.path`` can pull in a config file from
    the work tree, so a teammate's commit could opt everyone in.

    Raises:
        InvalidValue: the setting is not a boolean.
    """
    if allow_pickle is not None:
        return bool(allow_pickle)
    from gitml import settings

    return bool(settings.get("allow_pickle"))


def gate(file: str | os.PathLike[str], data: bytes, allow_pickle: bool | None, why: str,
         role: str | None = PICKLE, alternative: str | None = None) -> None:
    """Let ``data`` (the bytes read from ``file``) be loaded, or raise: the one gate for model code.

    Passes if the caller opted in (``opted_in``), or this machine recorded
    ``data`` in this ``role`` in this repository (``role=None``: a file no
    record vouches for, such as a skops file with unknown types). The caller
    must load exactly ``data``, never re-read ``file``.

    Raises:
        UntrustedModel: naming ``file``, ``why`` it could run code, and how to opt in.
    """
    if allow_pickle:
        return
    if role is not None and _digest(role, data) in trusted():
        return
    if allow_pickle is None and opted_in(None):
        return
    raise refusal(file, why, alternative, recordable=role is not None)


def read(file: Path, allow_pickle: bool | None, why: str, role: str = PICKLE) -> bytes:
    """The bytes of ``file``, read once and passed through ``gate``.

    Raises:
        UntrustedModel, InvalidValue (the file cannot be read).
    """
    try:
        data = file.read_bytes()
    except OSError as e:
        raise InvalidValue(f"Cannot read model file {file}: {e.strerror}") from e
    gate(file, data, allow_pickle, why, role)
    return data


def unpickle(file: Path, allow_pickle: bool | None, why: str) -> Any:
    """The object pickled in ``file`` (pickle or cloudpickle: both load with ``pickle``), once gated.

    Raises:
        UntrustedModel, InvalidValue.
    """
    return pickle.loads(read(file, allow_pickle, why))  # noqa: S301 - gated above


def check_files(files: Iterable[Path], allow_pickle: bool | None, why: str) -> None:
    """Gate every file a trusted model's code will read from its directory (a custom model's artifacts).

    These are read by the model's own code after it loads, so each must be
    a file this machine recorded as an artifact, or the caller opted in.

    Raises:
        UntrustedModel, InvalidValue.
    """
    if opted_in(allow_pickle):
        return
    for file in files:
        read(file, False, why, ARTIFACT)


def code_path(model_dir: Path, relative: str, allow_pickle: bool | None) -> Path:
    """The directory to put on ``sys.path`` for a model's ``code`` entry.

    With the opt-in, the model's own directory. Otherwise every file in it
    must be code this machine recorded; their verified bytes are copied into
    a private temporary directory, which is what goes on ``sys.path`` (so a
    file changed after the check is never imported).

    Raises:
        UntrustedModel, InvalidValue (a path outside the model directory).
    """
    source = inside(model_dir, relative, "code")
    if opted_in(allow_pickle):
        return source
    copy = Path(tempfile.mkdtemp(prefix="gitml-code-"))
    atexit.register(shutil.rmtree, copy, True)
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for file in files:
        data = read(file, False, f"it is code the model puts on sys.path ({relative})", CODE)
        target = copy / (file.name if file == source else file.relative_to(source))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return copy


def inside(model_dir: Path, relative: Any, key: str) -> Path:
    """``model_dir / relative``, refused unless it stays inside the model directory.

    Raises:
        InvalidValue: an absolute path, or one that leaves through '..' or a symlink.
    """
    if not isinstance(relative, str) or not relative or os.path.isabs(relative):
        raise InvalidValue(f"The MLmodel in {model_dir} gives {key} as {relative!r}: expected a path "
                           "inside the model directory")
    path = model_dir / relative
    root = model_dir.resolve()
    if path.resolve() != root and root not in path.resolve().parents:
        raise InvalidValue(f"The MLmodel in {model_dir} gives {key} as {relative!r}, which is outside the "
                           "model directory")
    return path


# -- the record of what this machine wrote ---------------------------------------------------


def record(files: Iterable[tuple[str, bytes]], repo: GitRepo | None = None) -> None:
    """Remember ``(role, bytes)`` of files this process wrote into a model, in the repository's trust file.

    ``repo`` defaults to the repository gitml tracks into; with none (a model
    saved outside any repository) nothing is recorded, and loading it needs
    the opt-in. Never fails a save: a trust file that cannot be written is
    logged and skipped.
    """
    entries = list(files)
    if not entries:
        return
    repo = repo or _repo()
    if repo is None:
        return
    path = _trust_path(repo)
    try:
        key = _key(create=True)
        lines = {f"{_digest(role, data, key)} {role}\n" for role, data in entries}
        new = sorted(lines - {f"{d} {r}\n" for d, r in _entries(path)})
        if not new:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(new).encode())  # one O_APPEND write: concurrent savers do not interleave
        finally:
            os.close(fd)
    except OSError as e:
        log.warning("gitml: could not record the model files this process wrote in %s (%s); loading "
                    "them will need allow_pickle=True", path, e)


_cache: dict[Path, tuple[tuple[int, int, int], frozenset[str]]] = {}


def trusted() -> frozenset[str]:
    """The digests recorded in the current repository's trust file (empty without a repository)."""
    repo = _repo()
    if repo is None:
        return frozenset()
    path = _trust_path(repo)
    try:
        st = os.stat(path)
    except OSError:
        return frozenset()
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _cache.get(path)
    if hit is None or hit[0] != stamp:  # re-read whenever the file changed
        hit = (stamp, frozenset(d for d, _ in _entries(path)))
        _cache[path] = hit
    return hit[1]


def _entries(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        digest, _, role = line.partition(" ")
        if len(digest) == 64 and role in ROLES:
            out.append((digest, role))
    return out


def _digest(role: str, data: bytes, key: bytes | None = None) -> str:
    key = key if key is not None else _key(create=False)
    if key is None:
        return ""  # no key on this machine: nothing was recorded with it, nothing matches
    return hmac.new(key, role.encode() + b"\n" + data, hashlib.sha256).hexdigest()


def _key(create: bool) -> bytes | None:
    """This user's trust key (32 random bytes), made on first use if ``create``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = Path(base) / KEY_FILE
    try:
        key = path.read_bytes()
        return key if len(key) == 32 else None
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".trust-key-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(32))
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first process to link wins; the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    key = path.read_bytes()
    return key if len(key) == 32 else None


def _trust_path(repo: GitRepo) -> Path:
    return Path(repo.common_dir) / names.TRUSTED_MODEL_FILES


def _repo() -> GitRepo | None:
    """The repository gitml tracks into, or None outside any repository."""
    from gitml.errors import NotARepository
    from gitml.tracking import runs

    try:
        return runs.open_repo()
    except NotARepository:
        return None
