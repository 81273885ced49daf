"""Shared fixtures: real git repositories in tmp, isolated from the user's git config."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE",
                "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE",
                "GITML_REPO", "GITML_RUN_ID", "GITML_EXPERIMENT_ID", "GITML_EXPERIMENT_NAME")


GITCONFIG = ("[user]\n\tname = Test User\n\temail = test@example.com\n"
             "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")


def isolate_git(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME at ``home`` with its own gitconfig; no system config; no GIT_* leaking in."""
    (home / ".gitconfig").write_text(GITCONFIG)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in GIT_ENV_DROP:
        monkeypatch.delenv(var, raising=False)
    # pygit2 caches the global config search path per process; point it at HOME.
    import pygit2

    pygit2.settings.search_path[pygit2.enums.ConfigLevel.GLOBAL] = str(home)
    pygit2.settings.search_path[pygit2.enums.ConfigLevel.SYSTEM] = str(home / "nosystem")
    pygit2.settings.search_path[pygit2.enums.ConfigLevel.XDG] = str(home / ".config")
    return home


@pytest.fixture(autouse=True)
def git_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME in tmp with its own gitconfig; no system config; no GIT_* leaking in."""
    return isolate_git(tmp_path_factory.mktemp("home"), monkeypatch)


@contextlib.contextmanager
def seeding(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh directory for a module-scoped seed repository, built as a test would build it.

    Inside: git isolated as by ``git_env`` and the tracking state reset before
    and after, so the seed is made exactly as in a test of its own. Tests then
    copy the seed with ``copy_seed`` rather than rebuilding it.
    """
    from gitml.tracking.testing import reset

    base = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        home = base / "home"
        home.mkdir()
        isolate_git(home, mp)
        reset()
        try:
            yield base
        finally:
            reset()


def copy_seed(seed: Path, to: Path) -> Path:
    """A private copy of a seed repository (its .git included) at ``to``."""
    shutil.copytree(seed, to, symlinks=True)
    return to


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run the real git CLI in ``cwd`` and return its stdout."""
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout


def run_rev(cwd: Path, run_id: str) -> str:
    """The commit of run ``run_id``, found with plain git as a user would: its own ref while
    it has one (live), else its entry in the runs ledger (a gitlink at ``<2>/<30>`` in
    ``refs/gitml/ledger/<first hex digit>``)."""
    own = git(cwd, "for-each-ref", "--format=%(objectname)", f"refs/gitml/runs/{run_id}").strip()
    if own:
        return own
    return git(cwd, "rev-parse", f"refs/gitml/ledger/{run_id[0]}:{run_id[:2]}/{run_id[2:]}").strip()


def git_run_ids(cwd: Path) -> list[str]:
    """Every run id in the repository, with plain git: ledger entries and runs' own refs."""
    ids = set()
    for ref in git(cwd, "for-each-ref", "--format=%(refname)", "refs/gitml/ledger/").split():
        for path in git(cwd, "ls-tree", "-r", "--name-only", ref).split():
            ids.add(path.replace("/", ""))
    for ref in git(cwd, "for-each-ref", "--format=%(refname)", "refs/gitml/runs/").split():
        ids.add(ref.rsplit("/", 1)[1])
    return sorted(ids)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A work tree with one commit (README + train.py) on branch main."""
    return init_repo(tmp_path / "repo")


def init_repo(path: Path) -> Path:
    """``repo``'s work tree, made at ``path`` (for seeds built outside a test)."""
    path.mkdir()
    git(path, "init", "-q")
    (path / "README.md").write_text("# demo\n")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def tracking(repo: Path, monkeypatch: pytest.MonkeyPatch):
    """The fluent API pointed at ``repo``; active runs and caches reset after the test."""
    import gitml
    from gitml.tracking.testing import reset

    reset()
    monkeypatch.setenv("GITML_REPO", str(repo))
    gitml.set_tracking_uri(repo)
    yield gitml
    close_tracking()


def close_tracking() -> None:
    """End open runs, flush and close writers, close indexes, unset the tracking target."""
    from gitml.tracking.testing import reset

    reset()


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a real separate process) in ``cwd``."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def gitml_cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed ``gitml`` console script as a user would."""
    out = subprocess.run([sys.executable, "-m", "gitml", *args], cwd=cwd, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"gitml {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


def gitml_invoke(cwd: Path, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """``gitml_cli`` in this process (click's CliRunner): the same command, output and exit code,
    without a new interpreter. For checks of a command's output and error text; exit codes of the
    real entry point, hooks and crash tests keep ``gitml_cli``.

    The repository is given as ``-C cwd`` (the cwd of this process is not changed), so arguments
    must not be paths relative to ``cwd``. An exception that escapes the command (which the real
    entry point would print as a traceback) is raised here. ``input`` is the command's stdin.
    """
    from click.testing import CliRunner

    from gitml.cli import main

    result = CliRunner().invoke(main, ["-C", str(cwd), *args], prog_name="gitml", input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = subprocess.CompletedProcess(["gitml", *args], result.exit_code, result.stdout, result.stderr)
    if check and out.returncode != 0:
        raise AssertionError(f"gitml {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out
