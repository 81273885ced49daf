"""Shared fixtures: real git repositories in tmp, isolated from the user's git config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE",
                "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE",
                "GITML_REPO", "GITML_RUN_ID", "GITML_EXPERIMENT_ID", "GITML_EXPERIMENT_NAME")


@pytest.fixture(autouse=True)
def git_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME in tmp with its own gitconfig; no system config; no GIT_* leaking in."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
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


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run the real git CLI in ``cwd`` and return its stdout."""
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A work tree with one commit (README + train.py) on branch main."""
    path = tmp_path / "repo"
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
    from gitml.tracking import fluent

    monkeypatch.setenv("GITML_REPO", str(repo))
    gitml.set_tracking_uri(repo)
    fluent._experiment_id = None
    yield gitml
    close_tracking()


def close_tracking() -> None:
    """End open runs, flush and close writers, close indexes, unset the tracking target."""
    import gitml
    from gitml.tracking import fluent, process, runs

    while fluent.active_run() is not None:
        fluent.end_run()
    process.close_writers()
    for idx in runs._indexes.values():
        idx.close()
    runs._indexes.clear()
    runs._repos.clear()
    gitml.set_tracking_uri(None)
    fluent._experiment_id = None


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
