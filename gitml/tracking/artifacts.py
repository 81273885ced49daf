"""Artifacts: files logged with a run, stored content-addressed in the DVC-layout cache.

The run tree's ``artifacts.json`` maps each artifact path to its md5 and
size; the bytes live in the content store (``store/content.py``). Logging
stores the file first and then records the entry, so an entry never points
at content that is not in the cache, holding the store's gc lock shared in
between (``gitml gc`` deletes only under it). Reading checks every hash.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from gitml.errors import InvalidName, InvalidValue, NotFound
from gitml.store.content import ByteProgress, Progress
from gitml.store.repo import GitRepo
from gitml.tracking import schema, validation
from gitml.tracking.schema import ARTIFACTS_FILE
from gitml.tracking.validation import validate_artifact_path

if TYPE_CHECKING:
    import numpy

    from gitml.store.content import ContentStore
    from gitml.tracking.entities import Run
    from gitml.tracking.writer import RunWriter


class ArtifactNotFound(NotFound):
    """The run has no artifact at that path."""


@dataclass(frozen=True)
class FileInfo:
    """An entry of ``list_artifacts``, as MLflow names it."""

    path: str
    is_dir: bool
    file_size: int | None


_stores: dict[tuple[str, int], ContentStore] = {}


def content_store(repo: GitRepo) -> ContentStore:
    """The (per-process) content store of ``repo``."""
    from gitml.store.content import ContentStore

    key = (str(repo.git_dir), os.getpid())
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = ContentStore.for_repo(repo)
    return store


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


# -- logging ------------------------------------------------------------------------------------


def log_artifact(repo: GitRepo, writer: RunWriter, local_path: str | os.PathLike[str], artifact_path: str | None = None,
                 progress: Progress | None = None) -> str:
    """Store one file under ``artifact_path/<its name>``; return that artifact path.

    ``progress`` hears ("store", bytes read, file size) as the file is hashed.

    Raises:
        InvalidValue: the file does not exist or is not a regular file.
        InvalidName: a bad ``artifact_path``.
    """
    src = Path(local_path)
    prefix = validate_artifact_path(artifact_path)
    if not src.exists():
        raise InvalidValue(f"Cannot log artifact {str(src)!r}: no such file")
    if src.is_dir():
        raise InvalidValue(f"Cannot log artifact {str(src)!r}: it is a directory (use log_artifacts)")
    dest = _join(prefix, validate_artifact_path(src.name, "file name"))
    store = content_store(repo)
    on_bytes = ByteProgress(progress, "store", src.stat().st_size) if progress is not None else None
    with store.writing():  # until the live log names it, `gitml gc` must not delete it
        md5, size = store.add_file(src, on_bytes)
        writer.add_artifact(dest, md5, size)
    return dest


def log_artifacts(repo: GitRepo, writer: RunWriter, local_dir: str | os.PathLike[str], artifact_path: str | None = None,
                  progress: Progress | None = None) -> list[str]:
    """Store every file under ``local_dir`` below ``artifact_path``; return their paths.

    ``progress`` hears ("store", bytes read, bytes of all the files).

    A symlink must stay inside ``local_dir``; one that points outside is
    refused before anything is recorded. Symlinked files are logged with
    their target's content; symlinked directories are not walked (their
    files are logged under their real path).

    Raises:
        InvalidValue: missing directory, or a symlink leading outside it.
    """
    root = Path(local_dir)
    if not root.is_dir():
        raise InvalidValue(f"Cannot log artifacts from {str(root)!r}: no such directory")
    prefix = validate_artifact_path(artifact_path)
    real_root = root.resolve()
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        # A symlinked directory must point inside the tree; it is not walked
        # (its files are logged under their real path, and no cycle is possible).
        for name in sorted(dirnames):
            full = Path(dirpath) / name
            if full.is_symlink():
                _check_inside(full, real_root, root)
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink():
                _check_inside(full, real_root, root)
                if not full.exists():
                    raise InvalidValue(f"Cannot log {str(full)!r}: broken symlink")
            if not full.is_file():
                continue  # sockets, fifos: not artifacts
            rel = full.relative_to(root).as_posix()
            files.append((validate_artifact_path(rel), full))
    store = content_store(repo)
    stored = []
    on_bytes = ByteProgress(progress, "store", sum(f.stat().st_size for _, f in files)) if progress is not None else None
    with store.writing():  # until the live log names them, `gitml gc` must not delete them
        for rel, full in files:
            md5, size = store.add_file(full, on_bytes)
            stored.append((rel, md5, size))
        for rel, md5, size in stored:
            writer.add_artifact(_join(prefix, rel), md5, size)
        if stored and prefix:
            dir_md5 = store.add_dir(stored)
            writer.add_artifact(prefix + "/", dir_md5, sum(s for _, _, s in stored))
    return [_join(prefix, rel) for rel, _, _ in stored]


def log_to_run(repo: GitRepo, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None,
               progress: Progress | None = None) -> tuple[Run, dict[str, schema.ArtifactEntry]]:
    """Store a file (as ``Client.log_artifact``) or a directory's files (as ``log_artifacts``) in an
    existing run and commit them now (``gitml artifacts log``).

    Returns the run as committed and the stored files' entries by artifact path.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive; InvalidValue (no such file or directory, a
        symlink leading outside the directory); InvalidName (a bad ``artifact_path``).
    """
    from gitml.tracking import runs

    src = Path(local_path)

    def store(run: Run, w: RunWriter) -> list[str]:
        if src.is_dir():
            return log_artifacts(repo, w, src, artifact_path, progress)
        return [log_artifact(repo, w, src, artifact_path, progress)]

    run, paths = runs.edit_run(repo, run_id, store)
    entries = manifest(repo, run.info.run_id, run.commit)
    return run, {p: entries[p] for p in sorted(paths)}


def _check_inside(link: Path, real_root: Path, root: Path) -> None:
    target = link.resolve()
    if target != real_root and real_root not in target.parents:
        raise InvalidValue(
            f"Refusing to log {str(link)!r}: it is a symlink to {str(target)!r}, outside {str(root)!r}"
        )


def log_bytes(repo: GitRepo, writer: RunWriter, data: bytes, artifact_file: str) -> str:
    """Store ``data`` as the artifact ``artifact_file`` (a run-relative file path)."""
    path = validate_artifact_path(artifact_file, "artifact file")
    if not path:
        raise InvalidName("An artifact file name is required")
    directory, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="gitml-") as tmp:
        local = Path(tmp) / name
        local.write_bytes(data)
        return log_artifact(repo, writer, local, directory or None)


def log_dict(repo: GitRepo, writer: RunWriter, dictionary: object, artifact_file: str) -> str:
    """A dict as JSON, or as YAML when the file ends in .yaml/.yml (as MLflow does)."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dictionary, default_flow_style=False, sort_keys=False)
    else:
        text = json.dumps(dictionary, indent=2)
    return log_bytes(repo, writer, text.encode(), artifact_file)


def log_figure(repo: GitRepo, writer: RunWriter, figure: object, artifact_file: str,
               save_kwargs: dict[str, Any] | None = None) -> str:
    """A matplotlib figure (``savefig``) or plotly figure (HTML, or image by extension)."""
    path = validate_artifact_path(artifact_file, "artifact file")
    suffix = PurePosixPath(path).suffix or ".png"
    with tempfile.TemporaryDirectory(prefix="gitml-") as tmp:
        local = Path(tmp) / ("figure" + suffix)
        if hasattr(figure, "savefig"):
            figure.savefig(local, **(save_kwargs or {}))
        elif hasattr(figure, "write_html") and suffix == ".html":
            figure.write_html(str(local), **(save_kwargs or {}))
        elif hasattr(figure, "write_image"):
            figure.write_image(str(local), **(save_kwargs or {}))
        else:
            raise InvalidValue(f"Cannot log figure of type {type(figure).__name__}: expected matplotlib or plotly")
        return log_bytes(repo, writer, local.read_bytes(), path)


#: MLflow's time-stepped image files: ``images/<key, / as ~>+step+<step>+timestamp+<ms>+<uuid>.png``, and a
#: ``...+compressed.webp`` at most 256 px a side; older MLflow wrote ``%`` for ``+``.
STEPPED_IMAGE = re.compile(r"^images/(?P<key>[^/]+?)[+%]step[+%](?P<step>-?\d+)[+%]timestamp[+%](?P<ts>\d+)"
                           r"[+%](?P<uuid>[0-9a-fA-F-]+)(?P<compressed>[+%]compressed)?\.(?P<ext>png|webp)$")
_IMAGE_KEY = re.compile(r"^[a-zA-Z0-9_\-./ ]+$")
COMPRESSED_IMAGE_SIZE = 256
LOGGED_IMAGES_TAG = "mlflow.loggedImages"


def log_image(repo: GitRepo, writer: RunWriter, image: object, artifact_file: str | None = None,
              key: str | None = None, step: int | None = None, timestamp: int | None = None) -> str:
    """A numpy array (HxW, HxWx3/4; uint8, or floats in [0, 1]) or PIL image, as PNG.

    With ``key`` (and ``step``) instead of ``artifact_file``: MLflow's
    time-stepped images, in its file layout (``STEPPED_IMAGE``) with its
    thumbnail and ``mlflow.loggedImages`` tag, so either tool's viewer shows
    them with a step slider. Returns the stored path.
    """
    if artifact_file is not None and (key is not None or step is not None or timestamp is not None):
        raise InvalidValue("log_image takes artifact_file, or key (with step and timestamp), not both")
    try:
        from PIL import Image
    except ImportError as e:
        raise InvalidValue("log_image needs Pillow: pip install pillow") from e
    if not isinstance(image, Image.Image):
        image = Image.fromarray(_as_uint8(image))
    import io

    def encoded(img: Any, fmt: str) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG" if fmt == "JPG" else fmt)
        return buf.getvalue()

    if artifact_file is not None:
        fmt = (PurePosixPath(artifact_file).suffix.lstrip(".") or "png").upper()
        return log_bytes(repo, writer, encoded(image, fmt), artifact_file)
    if key is None:
        raise InvalidValue("log_image needs artifact_file, or key (and step)")
    if not _IMAGE_KEY.match(key):
        raise InvalidValue(f"Invalid image key {key!r}: use letters, digits, '_', '-', '.', ' ' and '/'")
    import uuid

    step = validation.validate_metric_step(step or 0)
    timestamp = validation.validate_timestamp(timestamp) if timestamp is not None else time.time_ns() // 1_000_000
    base = f"images/{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uuid.uuid4()}"
    width, height = image.size
    scale = COMPRESSED_IMAGE_SIZE / max(width, height, 1)
    thumb = image.resize((max(1, int(width * scale)), max(1, int(height * scale))))
    path = log_bytes(repo, writer, encoded(image, "PNG"), base + ".png")
    log_bytes(repo, writer, encoded(thumb, "WEBP"), base + "+compressed.webp")
    writer.set_tag(LOGGED_IMAGES_TAG, "True")
    return path


def stepped_images(paths: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Image key -> its time-stepped images (``STEPPED_IMAGE``), by step then time: each
    ``{"step", "timestamp", "path", "thumbnail"}`` (thumbnail None when missing)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        m = STEPPED_IMAGE.match(path)
        if m is None:
            continue
        entry = found.setdefault((m["key"], m["uuid"]), {
            "key": m["key"].replace("~", "/").replace("#", "/"), "step": int(m["step"]), "timestamp": int(m["ts"]),
            "path": None, "thumbnail": None})
        entry["thumbnail" if m["compressed"] else "path"] = path
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in found.values():
        if entry["path"] is not None or entry["thumbnail"] is not None:
            out.setdefault(entry.pop("key"), []).append(entry)
    for items in out.values():
        items.sort(key=lambda e: (e["step"], e["timestamp"]))
    return dict(sorted(out.items()))


def _as_uint8(array: object) -> numpy.ndarray:
    import numpy as np

    arr = np.asarray(array)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InvalidValue(f"Cannot log image of shape {arr.shape}: expected HxW, HxWx1, HxWx3 or HxWx4")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise InvalidValue("Float images must have values in [0, 1]")
        return (arr * 255).round().astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise InvalidValue("Integer images must have values in [0, 255]")
        return arr.astype(np.uint8)
    raise InvalidValue(f"Cannot log image of dtype {arr.dtype}")


# -- reading ------------------------------------------------------------------------------------


def manifest(repo: GitRepo, run_id: str, commit: str | None = None) -> dict[str, schema.ArtifactEntry]:
    """The run's artifacts.json: path -> {md5, size} (directories end in '/').

    ``commit`` reads it from that run commit (a registered version pins one)
    instead of the run's latest.
    """
    if commit is None:
        from gitml.tracking import runs

        commit = runs.get_run(repo, run_id).commit
    if not repo.is_commit(commit):  # type: ignore[arg-type]
        raise schema.corrupt(run_id, commit, "it is not a commit")
    raw = repo.read_path(repo.commit_info(commit).tree, ARTIFACTS_FILE)  # type: ignore[arg-type]
    # The manifest may come from someone else's clone: never trust its paths or hashes.
    try:
        return schema.check_artifacts(schema.load_json(raw, ARTIFACTS_FILE)) if raw is not None else {}
    except schema.Problem as e:
        raise schema.corrupt(run_id, commit, e) from None


def list_artifacts(repo: GitRepo, run_id: str, path: str | None = None) -> list[FileInfo]:
    """The files and directories directly under ``path`` in the run's artifacts."""
    prefix = validate_artifact_path(path)
    files = {p: e for p, e in manifest(repo, run_id).items() if not p.endswith("/")}
    if prefix in files:
        return [FileInfo(prefix, False, files[prefix]["size"])]
    base = prefix + "/" if prefix else ""
    out: dict[str, FileInfo] = {}
    for p, entry in files.items():
        if not p.startswith(base):
            continue
        head, sep, _ = p[len(base) :].partition("/")
        child = base + head
        if sep:
            size = (out[child].file_size or 0) if child in out else 0
            out[child] = FileInfo(child, True, size + entry["size"])
        else:
            out[child] = FileInfo(child, False, entry["size"])
    return [out[k] for k in sorted(out)]


def download_artifacts(repo: GitRepo, run_id: str, path: str | None = None, dst_path: str | os.PathLike[str] | None = None,
                       commit: str | None = None, progress: Progress | None = None) -> str:
    """Copy an artifact file or directory out of the cache, verifying every hash.

    ``progress`` hears ("download", bytes copied, bytes of all the files).

    As in MLflow, the artifact keeps its run-relative path under ``dst_path``
    (``data/x.csv`` lands at ``<dst>/data/x.csv``); returns that local path.

    Raises:
        ArtifactNotFound, MissingObject (not in the local cache: pull first),
        CorruptObject (content does not match its recorded hash).
    """
    prefix = validate_artifact_path(path)
    files = {p: e for p, e in manifest(repo, run_id, commit).items() if not p.endswith("/")}
    dst = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="gitml-artifacts-"))
    store = content_store(repo)
    if prefix in files:
        chosen = {prefix: files[prefix]}
    else:
        base = prefix + "/" if prefix else ""
        chosen = {p: e for p, e in files.items() if p.startswith(base)}
    if not chosen:
        raise ArtifactNotFound(f"Run {run_id} has no artifact {prefix or '(root)'!r}")
    on_bytes = ByteProgress(progress, "download", sum(e["size"] for e in chosen.values())) if progress else None
    for p, entry in sorted(chosen.items()):
        store.checkout(entry["md5"], dst / p, on_bytes)
    return str(dst / prefix) if prefix else str(dst)


def _file_hash(repo: GitRepo, run_id: str, path: str) -> str:
    prefix = validate_artifact_path(path)
    entry = manifest(repo, run_id).get(prefix)
    if entry is None or prefix.endswith("/"):
        raise ArtifactNotFound(f"Run {run_id} has no artifact file {prefix!r}")
    return entry["md5"]


def read_artifact(repo: GitRepo, run_id: str, path: str) -> bytes:
    """The verified bytes of one artifact file."""
    return content_store(repo).read_bytes(_file_hash(repo, run_id, path))


def read_artifact_head(repo: GitRepo, run_id: str, path: str, size: int) -> tuple[bytes, int]:
    """The first ``size`` bytes of an artifact file and its whole size (for previews of big files)."""
    return content_store(repo).read_head(_file_hash(repo, run_id, path), size)


def stream_artifact(repo: GitRepo, run_id: str, path: str) -> Iterator[bytes]:
    """An artifact file's bytes in blocks, hash checked at the end (for downloads of any size)."""
    return content_store(repo).iter_verified(_file_hash(repo, run_id, path))
