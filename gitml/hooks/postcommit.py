"""The post-commit hook: log a run for a commit from the params and metrics files it changed.

DVC's conventions: params from ``params.yaml``, metrics from
``metrics.json``/``metrics.yaml`` (``gitml.hooks.params``/``.metrics`` name
others), nested keys flattened with dots as ``dvc params diff`` shows them.
Values are read from the commit itself, and the run's source is that
commit. Problems with one file or one key are warnings; the rest is logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.errors import GitmlError
from gitml.hooks import config
from gitml.store.gitcli import git

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo

HOOK_TAG = "gitml.hook"
FILES_TAG = "gitml.hook.files"
#: Params and metrics files bigger than this are not read (a warning says so).
MAX_FILE_BYTES = 10 * 1024 * 1024


@dataclass
class PostCommitResult:
    """What the hook did for one commit."""

    commit: str | None
    run_id: str | None = None
    params: int = 0
    metrics: int = 0
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str = ""  # why no run was logged
    existing: str | None = None  # the run the hook logged for the commit before (none logged now)


def changed_files(git_dir: str, commit: str, pathspecs: tuple[str, ...]) -> list[str]:
    """Files matching ``pathspecs`` that ``commit`` changed (against its first parent; all for a root commit)."""
    if not pathspecs:
        return []
    out = git(git_dir, "diff-tree", "--no-commit-id", "--name-only", "-z", "-r", "--root",
              "--diff-merges=first-parent", commit, "--", *pathspecs)
    return [p for p in out.stdout.decode(errors="surrogateescape").split("\0") if p]


# git's empty tree, by object format (SHA-1, SHA-256): a known object in every repository
_EMPTY_TREE = {40: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
               64: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"}


def files_in(git_dir: str, commit: str, pathspecs: tuple[str, ...]) -> list[str]:
    """Files of ``commit`` matching ``pathspecs`` (full git pathspecs, from the repository root)."""
    if not pathspecs:
        return []
    # `git ls-tree` takes path prefixes, not pathspecs; a diff from the empty
    # tree lists the same files with the globbing `diff-tree` above uses.
    out = git(git_dir, "diff-tree", "--no-commit-id", "--name-only", "-z", "-r", _EMPTY_TREE[len(commit)], commit,
              "--", *pathspecs)
    return [p for p in out.stdout.decode(errors="surrogateescape").split("\0") if p]


def parse_file(path: str, data: bytes) -> dict[str, Any]:
    """A params or metrics file as a mapping: JSON for ``.json``, TOML for ``.toml``, YAML otherwise.

    Raises:
        ValueError: the file does not parse or is not a mapping (the message names the file).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    lower = path.lower()
    if lower.endswith(".json"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
        except RecursionError:
            raise ValueError(f"{path}: nested too deeply") from None
    elif lower.endswith(".toml"):
        try:
            import tomllib
        except ImportError as e:  # Python 3.10
            raise ValueError(f"{path}: reading TOML needs Python 3.11 or later") from e
        try:
            loaded = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML ({e})") from e
        except RecursionError:
            raise ValueError(f"{path}: nested too deeply") from None
    else:
        import yaml

        from gitml import safeyaml

        try:
            loaded = safeyaml.load(text, path)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ValueError(f"{path}: not valid YAML ({problem}{where})") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        # ValueError, not TypeError: the file's content is wrong, not the caller's argument
        raise ValueError(f"{path}: expected a mapping of names to values, found {type(loaded).__name__}")  # noqa: TRY004
    return loaded


def flatten(data: dict[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys, as ``dvc params diff`` shows them: ``{"a": {"b": 1}}`` -> ``a.b``.

    Lists stay values; empty mappings give nothing. Lazy (a caller may stop early)
    and without recursion, so any depth is safe.
    """
    stack: list[Iterator[tuple[str, Any]]] = [_named(prefix, data)]
    while stack:
        for name, value in stack[-1]:
            if isinstance(value, dict):
                stack.append(_named(name, value))
                break
            yield name, value
        else:
            stack.pop()


def _named(prefix: str, data: dict[Any, Any]) -> Iterator[tuple[str, Any]]:
    return ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in data.items())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def collect(repo: GitRepo, commit: str, paths: list[str], kind: str,
            warnings: list[str], limit: int = 1000) -> dict[str, tuple[Any, str]]:
    """key -> (value, file) from ``paths`` at ``commit``; the first file to give a key wins.

    At most ``limit`` keys are taken, and files over MAX_FILE_BYTES are not
    read: a commit is never held up by a generated file of 200k keys.
    """
    tree = repo.commit_info(commit).tree
    found: dict[str, tuple[Any, str]] = {}
    for path in paths:
        data = repo.read_path(tree, path)
        if data is None:
            continue
        if len(data) > MAX_FILE_BYTES:
            warnings.append(f"{path}: {len(data)} bytes, over the {MAX_FILE_BYTES // 2**20} MB gitml reads; "
                            f"its {kind} were not logged")
            continue
        try:
            mapping = parse_file(path, data)
        except ValueError as e:
            warnings.append(f"{e}; its {kind} were not logged")
            continue
        skipped = []
        for key, value in flatten(mapping):
            if len(found) >= limit and key not in found:
                warnings.append(f"{path}: more than {limit} {kind}; the rest were not logged "
                                f"(git config gitml.hooks.maxkeys raises the limit)")
                break
            if kind == "metrics" and not _is_number(value):
                skipped.append(key)
            elif key in found and found[key][0] != value:
                warnings.append(f"{path}: {kind[:-1]} {key!r} is also in {found[key][1]}; kept the value from there")
            else:
                found.setdefault(key, (value, path))
        if skipped:
            shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
            warnings.append(f"{path}: skipped metrics that are not numbers: {shown}")
    return found


def log_commit(repo: GitRepo, rev: str = "HEAD", force: bool = False) -> PostCommitResult:
    """Log a run for commit ``rev`` if it changed a params or metrics file (or ``gitml.hooks.always``).

    The run is tagged ``gitml.hook=post-commit``; its source is the commit.
    A file that does not parse, a non-numeric metric or a bad key is a
    warning in the result, and the rest is logged. A commit that has an
    active run from the hook already gets no second one (``existing`` names
    it) unless ``force``.

    Raises:
        GitmlError: git could not be read or the run could not be written.
    """
    git_dir = str(repo.git_dir)
    settings = config.load(git_dir)
    head = git(git_dir, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", ok=(0, 1))
    commit = head.stdout.decode().strip() or None
    result = PostCommitResult(commit, warnings=list(settings.warnings))
    if commit is None:
        result.skipped = f"{rev} is not a commit"
        return result
    if not changed_files(git_dir, commit, settings.params + settings.metrics) and not settings.always:
        result.skipped = "the commit changed no params or metrics file"
        return result
    if not force:
        result.existing = hook_run_of(repo, commit)
        if result.existing:
            result.skipped = f"commit {commit[:7]} has run {result.existing[:12]} from the hook already"
            return result
    params_files = files_in(git_dir, commit, settings.params)
    metrics_files = files_in(git_dir, commit, settings.metrics)
    params = collect(repo, commit, params_files, "params", result.warnings, settings.maxkeys)
    metrics = collect(repo, commit, metrics_files, "metrics", result.warnings, settings.maxkeys)
    if not params and not metrics and not settings.always:
        result.skipped = "no params or metrics to log"
        return result
    result.files = sorted({f for _, f in params.values()} | {f for _, f in metrics.values()})
    result.run_id = _log_run(repo, commit, settings, params, metrics, result)
    return result


def open_plain(path: str) -> GitRepo:
    """The repository at ``path``, opened to log without libgit2 (see ``gitml.store.plain``).

    Raises:
        NotARepository: no git repository there.
    """
    from gitml import settings
    from gitml.store.plain import PlainGitRepo

    settings.check_environment()
    return PlainGitRepo.discover(path)


def hook_run_of(repo: GitRepo, commit: str) -> str | None:
    """The id of the newest active run the hook logged for ``commit`` (its source, tagged ``gitml.hook``), if any."""
    from gitml.store import names
    from gitml.tracking import notes, runs

    note = repo.read_note(names.NOTES_REF, commit)
    if note is None or not notes.note_runs(note):
        return None  # the hook writes the note of each run it logs at once: no run of its on this commit

    found = [r for r in runs.runs_of_commits(repo, [commit]).get(commit, [])
             if r.data.tags.get(HOOK_TAG) == "post-commit" and r.source.get("commit") == commit]
    return found[-1].info.run_id if found else None


def _log_run(repo: GitRepo, commit: str, settings: config.HookConfig, params: dict[str, tuple[Any, str]],
             metrics: dict[str, tuple[Any, str]], result: PostCommitResult) -> str:
    from gitml.store.snapshot import Snapshot
    from gitml.tracking import experiments, notes, runs
    from gitml.tracking.entities import RunStatus

    head, branch = repo.head()
    snapshot = Snapshot(commit=commit, head=commit, branch=branch if head == commit else None, dirty=False)
    exp_id = (experiments.get_or_create(repo, settings.experiment).experiment_id if settings.experiment
              else experiments.DEFAULT_ID)
    tags = {HOOK_TAG: "post-commit", "mlflow.source.name": "git commit"}
    if result.files:
        tags[FILES_TAG] = ",".join(result.files)
    w, _ = runs.start_new_run(repo, exp_id, f"commit-{commit[:7]}", tags, snapshot=snapshot,
                              entry_point="post-commit")
    status = RunStatus.FAILED
    try:
        for key, (value, path) in params.items():
            try:
                w.log_param(key, value)
                result.params += 1
            except GitmlError as e:
                result.warnings.append(f"{path}: param {key!r} not logged: {e.message}")
        for key, (value, path) in metrics.items():
            try:
                w.log_metric(key, value, step=0)
                result.metrics += 1
            except GitmlError as e:
                result.warnings.append(f"{path}: metric {key!r} not logged: {e.message}")
        status = RunStatus.FINISHED
    finally:
        runs.end_run(repo, w.run_id, status)
        notes.write_notes(repo)  # now, not at interpreter exit: `python -m gitml.hooks` skips the exit hooks
    return w.run_id
