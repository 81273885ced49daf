"""The pre-push hook: send gitml's runs, notes and registry tags to the remote the branch goes to.

``gitml.sync.push`` does the work (leased ref updates, artifacts to the DVC
remote first). It pushes with ``git push --no-verify``, so this hook never
runs itself again. The user's push goes on whatever happens here, unless
``gitml.hooks.strict`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitml.errors import GitmlError

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo

# Pushing these by hand with plain git needs no second push from the hook.
_GITML_NAMESPACES = ("refs/gitml/", "refs/notes/gitml")


@dataclass(frozen=True)
class RefUpdate:
    """One line git gives pre-push on stdin."""

    local_ref: str
    local_oid: str
    remote_ref: str
    remote_oid: str


@dataclass
class PrePushResult:
    """What the hook pushed, what went wrong, and whether the user's push must stop."""

    remote: str
    sent: list[str] = field(default_factory=list)  # "3 runs", "notes", "1 registry tag"
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None  # why gitml's refs did not all reach the remote
    strict: bool = False
    skipped: str = ""

    @property
    def block(self) -> bool:
        return self.failure is not None and self.strict


def parse_updates(text: str) -> list[RefUpdate]:
    """git's pre-push stdin: ``<local ref> <local oid> <remote ref> <remote oid>`` per line."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            updates.append(RefUpdate(*parts))
    return updates


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def push_refs(repo: GitRepo, remote: str, stdin: str = "", strict: bool = False) -> PrePushResult:
    """Push gitml's refs to ``remote`` (a remote name or URL, as git gives it to the hook).

    Never raises for a failed push: the reason is ``result.failure``, and
    ``result.block`` says whether the user's push must stop (``strict``:
    ``gitml.hooks.strict``).
    """
    from gitml import sync
    from gitml.store.content import RemoteNotConfigured

    result = PrePushResult(remote, strict=strict)
    updates = parse_updates(stdin)
    if updates and all(u.remote_ref.startswith(_GITML_NAMESPACES) for u in updates):
        result.skipped = "this push is gitml's refs already"
        return result
    try:
        report = sync.push(repo, remote)
    except RemoteNotConfigured as e:
        result.failure = (f"no runs were pushed to {remote}: they have artifacts, and there is nowhere to put "
                          f"them. {e.message}; then run 'gitml push {remote}'")
        return result
    except GitmlError as e:
        result.failure = f"could not push runs to {remote}: {e.message}"
        return result
    if report.runs_sent:
        result.sent.append(_plural(len(report.runs_sent), "run"))
    if report.notes == "sent":
        result.sent.append("notes")
    if report.tags_sent:
        result.sent.append(_plural(len(report.tags_sent), "registry tag"))
    if report.artifacts_copied:
        result.sent.append(f"{_plural(report.artifacts_copied, 'artifact object')} to {report.artifact_remote}")
    for run_id, paths in sorted(report.artifacts_missing.items()):
        result.warnings.append(f"run {run_id[:12]}: artifacts not in the local cache, so not on the artifact "
                               f"remote: {', '.join(sorted(paths))}")
    for old, new in sorted(report.tags_renumbered.items()):
        result.warnings.append(f"registry: your unpublished {old} is now {new} ({remote} had {old} already)")
    problems = [f"{ref} rejected ({why})" for ref, why in sorted(report.refs_rejected.items())]
    problems += [f"registry tag {tag}: {why}" for tag, why in sorted(report.tag_conflicts.items())]
    if problems:
        result.failure = (f"{_plural(len(problems), 'gitml ref')} not pushed to {remote}: {'; '.join(problems[:3])}"
                          + (" ..." if len(problems) > 3 else "") + f"; run 'gitml push {remote}' to retry")
    return result
