"""``gitml run`` and ``gitml rerun``: execute a project at one commit and record it as a run.

The project is a commit of a repository: the one gitml tracks into (a path
inside it, at a revision or as the work tree is now), another local
repository, or a git URL, optionally with ``#subdir``. It is checked out
somewhere else (a detached worktree, or a clone), never in the user's work
tree. The run's source commit is the commit that ran; for the work tree as it
is, that is a snapshot commit of the uncommitted changes, exactly as for any
run.

Everything is checked before anything runs: the entry point, every parameter
against its declared type, the environment. The child process gets
``GITML_RUN_ID`` and ``GITML_REPO``, so ``gitml.start_run()`` inside the entry
point logs into this run, and, as ``mlflow run`` does, ``MLFLOW_TRACKING_URI``
(``gitml:<repo>``), ``MLFLOW_RUN_ID`` and ``MLFLOW_EXPERIMENT_ID``, so an
unmodified ``import mlflow`` project (with the ``mlflow`` extra) logs into the
same run through the plugin. Its stdout and stderr are shown and kept as the
run's artifacts ``stdout.txt`` / ``stderr.txt``. A non-zero exit marks the
run FAILED with tag ``gitml.exit_code``.

MLflow stores a project writes into its temporary checkout anyway (``mlruns/``,
``mlartifacts/``, ``mlflow.db``: a script that sets its own tracking URI) are
never deleted with the checkout: they are kept as artifacts of the run under
``mlflow-local/`` with a one-line warning naming them (or, if they cannot be
logged, copied to ``.git/gitml/project-output/<run_id>/``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gitml.errors import GitmlError, InvalidValue
from gitml.tracking import uri as mlflow_uri
from gitml.store.repo import GitRepo

if TYPE_CHECKING:
    from gitml.store.snapshot import Snapshot
    from gitml.tracking.writer import RunWriter

_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:")
#: What MLflow writes where a script points it at a local store (file store, artifacts, sqlite).
MLFLOW_LOCAL_STORES = ("mlruns", "mlartifacts", "mlflow.db")
KEPT_PREFIX = "mlflow-local"


@dataclass
class RunResult:
    run_id: str
    exit_code: int
    commit: str


@dataclass
class _Source:
    """A checked-out project: where its files are, the commit, how to record it."""

    path: Path  # the project directory (subdir applied)
    commit: str
    snapshot: Snapshot  # the run's source
    uri: str
    subdir: str
    cleanup: list[Callable[[], object]]
    #: the project as the user knows it (their directory, or the URL), for messages and the run's source tags
    display: str = ""


def split_uri(uri: str) -> tuple[str, str]:
    """``url#subdir`` -> (url, subdir); the subdir must stay inside the project."""
    base, sep, sub = uri.rpartition("#") if "#" in uri else (uri, "", "")
    sub = sub.strip("/")
    if sep and (not sub or sub.startswith("/") or ".." in Path(sub).parts):
        raise InvalidValue(f"Invalid subdirectory {sub!r} in {uri!r}: give a relative path inside the project")
    return (base if sep else uri), sub


def _is_remote(base: str, repo: GitRepo, cwd: Path) -> bool:
    if _URL_RE.match(base):
        return True
    path = (cwd / base).resolve()
    if not path.exists():
        raise InvalidValue(f"Project {base!r} not found: give a path or a git URL")
    workdir = repo.workdir
    return workdir is None or not (path == workdir or workdir in path.parents)


def checkout(repo: GitRepo, uri: str, version: str | None, tmp: Path, cwd: Path) -> _Source:
    """Check the project out under ``tmp``; nothing in the user's work tree changes."""
    from gitml import settings
    from gitml.store import worktree
    from gitml.store.snapshot import Snapshot, take_snapshot

    base, subdir = split_uri(uri)
    cleanup: list[Callable[[], object]] = []
    if _is_remote(base, repo, cwd):
        url = base if _URL_RE.match(base) else str((cwd / base).resolve())
        root, commit = worktree.clone_at(url, version, tmp)
        ref = worktree.import_commit(repo, root, commit)
        cleanup.append(lambda: worktree.drop_ref(repo, ref))
        snap = Snapshot(commit=commit, head=commit, branch=None, dirty=False)
        project = root / subdir
        shown = url
        display = url + (f"#{subdir}" if subdir else "")
    else:
        inside = (cwd / base).resolve().relative_to(repo.workdir)  # type: ignore[arg-type]
        subdir = str(Path(inside) / subdir).strip(".").strip("/") if str(inside) != "." or subdir else ""
        if version is None:
            snap = take_snapshot(repo, settings.get("snapshot_max_file_size", repo))
            if snap.commit is None:
                raise InvalidValue("The repository has no commits yet: commit the project first")
            commit = snap.commit
        else:
            commit = worktree.resolve(repo, version)
            snap = Snapshot(commit=commit, head=commit, branch=None, dirty=False)
        root = worktree.add_worktree(repo, commit, tmp)
        cleanup.append(lambda: worktree.remove_worktree(repo, root))
        project = root / subdir if subdir else root
        shown = "."
        display = str(Path(repo.workdir or ".") / subdir if subdir else repo.workdir)
    if not project.is_dir():
        for fn in reversed(cleanup):
            fn()
        raise InvalidValue(f"{uri!r} at {commit[:12]} has no directory {subdir!r}")
    return _Source(project, commit, snap, shown, subdir, cleanup, display)


def run_project(repo: GitRepo, uri: str = ".", entry_point: str = "main", params: dict[str, str] | None = None,
                version: str | None = None, experiment: str | None = None, env_manager: str | None = None,
                cwd: str | os.PathLike[str] | None = None, rerun_of: str | None = None,
                stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> RunResult:
    """Run ``entry_point`` of the project at ``uri`` (at ``version``) as a new gitml run.

    Raises (before anything runs):
        ProjectError (MLproject, entry point, parameters), EnvError,
        CheckoutError (unknown revision), InvalidValue.
    """
    here = Path(cwd or os.getcwd()).resolve()
    with tempfile.TemporaryDirectory(prefix="gitml-run-") as tmp:
        source = checkout(repo, uri, version, Path(tmp), here)
        try:
            return _execute(repo, source, entry_point, params or {}, version, experiment, env_manager, here,
                            rerun_of, stdout or sys.stdout, stderr or sys.stderr)
        finally:
            for fn in reversed(source.cleanup):
                fn()


def _declared_env(project: Any) -> str | None:
    for kind in ("python_env", "conda_env", "docker_env"):
        if getattr(project, kind, None):
            return kind
    return None


def _execute(repo: GitRepo, source: _Source, entry_point: str, params: dict[str, str], version: str | None,
             experiment: str | None, env_manager: str | None, cwd: Path, rerun_of: str | None,
             out: IO[str], err: IO[str], run_name: str | None = None) -> RunResult:
    from gitml.projects import envs
    from gitml.projects.spec import load_project
    from gitml.tracking import artifacts, experiments, process, runs
    from gitml.tracking.entities import RunStatus

    try:
        project = load_project(source.path)
        ep = project.entry_point(entry_point)
        resolved = ep.resolve({k: str(v) for k, v in params.items()}, cwd)
    except GitmlError as e:
        # Name the user's project, not the temporary checkout (gone by the time they read it).
        message = e.message.replace(str(source.path), source.display or source.uri)
        raise type(e)(f"{message} (the project as of commit {source.commit[:8]})") from None
    declared = _declared_env(project)
    manager = env_manager or ("virtualenv" if declared == "python_env" else "local" if declared is None else None)
    if manager is None:
        raise envs.EnvError(f"This project declares a {declared}, which gitml run does not build. Run it with "
                            "--env-manager local to use the current Python environment instead.")
    env = envs.prepare(manager, source.path, getattr(project, "python_env", None), declared)

    if experiment is None:
        exp_id = experiments.from_settings(repo)
    elif experiment.startswith("id:"):
        exp_id = experiments.get_experiment(repo, experiment[3:]).experiment_id
    else:
        exp_id = experiments.get_or_create(repo, experiment).experiment_id
    tags = {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": source.display or source.uri + (f"#{source.subdir}" if source.subdir else ""),
        "mlflow.project.entryPoint": entry_point,
        "mlflow.project.env": manager,
        "mlflow.project.backend": "local",
        "mlflow.source.git.commit": source.commit,
    }
    if version:
        tags["gitml.project.version"] = version
    repo_url = source.uri if source.uri != "." else repo.config_value("remote.origin.url")
    if repo_url:
        tags["mlflow.source.git.repoURL"] = repo_url
    if source.subdir:
        tags["gitml.project.subdir"] = source.subdir
    if rerun_of:
        tags["gitml.rerun_of"] = rerun_of
    w, _ = runs.start_new_run(repo, exp_id, run_name=run_name, tags=tags, snapshot=source.snapshot,
                              entry_point=entry_point)
    run_id = w.run_id
    for k, v in resolved.params.items():
        w.log_param(k, v)
    w.flush()  # the child resumes the run: it must exist in git

    child_env = env.environ(dict(os.environ))
    where = str(repo.workdir or repo.git_dir)
    child_env.update({"GITML_RUN_ID": run_id, "GITML_REPO": where,
                      # as `mlflow run` does: an `import mlflow` project logs into this run (the plugin)
                      "MLFLOW_TRACKING_URI": mlflow_uri.tracking_uri(where), "MLFLOW_RUN_ID": run_id,
                      "MLFLOW_EXPERIMENT_ID": exp_id})
    child_env.pop("GITML_EXPERIMENT_ID", None)
    child_env.pop("GITML_EXPERIMENT_NAME", None)
    cmd = resolved.argv if resolved.argv is not None else ["bash", "-c", resolved.command]
    if resolved.argv is not None and cmd and cmd[0] == "python":
        cmd = [env.python, *cmd[1:]]
    out.write(f"gitml run {run_id[:12]}: {resolved.command} (in {source.commit[:12]}, env {manager})\n")
    out.flush()
    root = source.path.parents[len(Path(source.subdir).parts) - 1] if source.subdir else source.path
    roots = [root, source.path] if source.path != root else [root]
    before = {p: _fingerprint(p) for p in _local_stores(roots)}
    with tempfile.TemporaryDirectory(prefix="gitml-run-logs-") as logs:
        logs_dir = Path(logs)
        try:
            code = _spawn(cmd, source.path, child_env, logs_dir, out, err)
        except KeyboardInterrupt:
            code = 130
        except OSError as e:
            err.write(f"gitml run: could not start {cmd[0]!r}: {e.strerror}\n")
            code = 127
        w = process.local_writer(repo, run_id) or process.get_writer(repo, run_id)
        for name in ("stdout.txt", "stderr.txt"):
            artifacts.log_artifact(repo, w, logs_dir / name)
        _keep_local_stores(repo, w, roots, before, err)
        if code != 0:
            w.set_tag("gitml.exit_code", str(code))
        status = RunStatus.FINISHED if code == 0 else RunStatus.KILLED if code == 130 else RunStatus.FAILED
        runs.end_run(repo, run_id, status)
    return RunResult(run_id, code, source.commit)


def _local_stores(roots: list[Path]) -> list[Path]:
    return [r / name for r in roots for name in MLFLOW_LOCAL_STORES if (r / name).exists()]


def _fingerprint(path: Path) -> list[tuple[str, int, int]]:
    files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if not p.is_dir())
    out = []
    for f in files:
        st = f.lstat()
        out.append((str(f), st.st_size, st.st_mtime_ns))
    return out


def _keep_local_stores(repo: GitRepo, w: RunWriter, roots: list[Path], before: dict[Path, list[tuple[str, int, int]]],
                       err: IO[str]) -> None:
    """Keep what the project wrote to MLflow stores inside the temporary checkout (see module doc)."""
    from gitml.tracking import artifacts

    for path in _local_stores(roots):
        if path in before and before[path] == _fingerprint(path):
            continue  # committed with the project and untouched
        rel = path.relative_to(roots[0])
        dest = f"{KEPT_PREFIX}/{rel.as_posix()}"
        try:
            if path.is_dir():
                artifacts.log_artifacts(repo, w, path, dest)
            else:
                artifacts.log_artifact(repo, w, path, str(Path(dest).parent))
            err.write(f"gitml run: warning: the project wrote {rel.as_posix()} in its temporary checkout "
                      f"(MLflow logging that bypassed gitml); kept as artifacts {dest} of run {w.run_id[:12]}\n")
        except (GitmlError, OSError) as e:
            kept = repo.git_dir / "gitml" / "project-output" / w.run_id / rel
            kept.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, kept, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(path, kept)
            err.write(f"gitml run: warning: the project wrote {rel.as_posix()} in its temporary checkout; "
                      f"it could not be logged ({e}), copied to {kept}\n")


def _spawn(cmd: list[str], cwd: Path, env: dict[str, str], logs: Path, out: IO[str], err: IO[str]) -> int:
    """Run ``cmd``; copy its stdout/stderr to ours and to logs/stdout.txt, logs/stderr.txt."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pump(stream: IO[bytes], path: Path, sink: IO[str]) -> None:
        with open(path, "wb") as f:
            for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
                f.write(chunk)
                sink.write(chunk.decode(errors="replace"))
                sink.flush()

    threads = [threading.Thread(target=pump, args=(proc.stdout, logs / "stdout.txt", out)),
               threading.Thread(target=pump, args=(proc.stderr, logs / "stderr.txt", err))]
    for t in threads:
        t.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    finally:
        for t in threads:
            t.join()
    return code


def rerun(repo: GitRepo, run_id: str, params: dict[str, str] | None = None, env_manager: str | None = None,
          experiment: str | None = None, cwd: str | os.PathLike[str] | None = None,
          stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> RunResult:
    """Run a past run again from its own source commit, with its parameters (``params`` override).

    Raises:
        RunNotFound, InvalidValue (the run was not made by ``gitml run`` and
        records no script to run).
    """
    from gitml.tracking import runs

    old = runs.get_run(repo, run_id)
    tags = old.data.tags
    commit = (old.source or {}).get("commit")
    if not commit:
        raise InvalidValue(f"Run {old.info.run_id} records no source commit to run again")
    entry = tags.get("mlflow.project.entryPoint") or (old.source or {}).get("entry_point")
    if not entry:
        raise InvalidValue(f"Run {old.info.run_id} records no entry point to run again")
    merged = dict(old.data.params) if "mlflow.project.entryPoint" in tags else {}
    merged.update(params or {})
    subdir = tags.get("gitml.project.subdir", "")
    uri = "." + (f"#{subdir}" if subdir else "")
    exp = experiment
    here = Path(cwd or os.getcwd()).resolve()
    with tempfile.TemporaryDirectory(prefix="gitml-rerun-") as tmp:
        from gitml.store import worktree
        from gitml.store.snapshot import Snapshot

        root = worktree.add_worktree(repo, commit, Path(tmp))
        project = root / subdir if subdir else root
        # the project as the first run recorded it: its repository URL, and the name it was shown by
        shown = tags.get("mlflow.source.name", ".").split("#")[0]
        local = str(Path(repo.workdir or ".") / subdir if subdir else repo.workdir)
        source = _Source(project, commit, Snapshot(commit=commit, head=(old.source or {}).get("head") or commit,
                                                   branch=None, dirty=bool((old.source or {}).get("dirty"))),
                         tags.get("mlflow.source.git.repoURL") or ".", subdir,
                         [lambda: worktree.remove_worktree(repo, root)],
                         local if shown in (".", "") else tags.get("mlflow.source.name", local))
        try:
            exp = exp or f"id:{old.info.experiment_id}"
            result = _execute(repo, source, entry, merged, None, exp, env_manager or tags.get("mlflow.project.env"),
                              here, old.info.run_id, stdout or sys.stdout, stderr or sys.stderr,
                              run_name=old.info.run_name or None)
        finally:
            for fn in reversed(source.cleanup):
                fn()
    return result
