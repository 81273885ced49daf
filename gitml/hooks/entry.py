"""What the installed hook scripts run: ``python -m gitml.hooks post-commit|pre-push``.

The scripts call this module rather than the click CLI because the hook
runs on every commit that logs something, and click with all of gitml's
commands costs tens of milliseconds before any work starts.
``gitml hooks run post-commit|pre-push`` calls the same functions.

Both speak git's hook protocol: messages on stderr, an exit status.
post-commit always exits 0; pre-push exits 1 only when gitml's refs could
not be pushed and ``gitml.hooks.strict`` is true.
"""

from __future__ import annotations

import sys
from typing import TextIO

USAGE = "usage: python -m gitml.hooks post-commit [--rev REV] | pre-push REMOTE [URL]"


#: Warnings one hook prints at most (a generated file can give one per key).
MAX_WARNINGS = 20


def _line(text: str) -> str:
    """The first line of a message (git's errors run over several), without a final period."""
    return (text.strip().splitlines() or [""])[0].rstrip(".")


def _reason(e: BaseException) -> str:
    return _line(getattr(e, "message", None) or f"{type(e).__name__}: {e}")


def post_commit(path: str = ".", rev: str = "HEAD", err: TextIO | None = None, force: bool = False) -> int:
    """Log a run for ``rev`` from the params/metrics files it changed; report on ``err``. Always 0.

    A commit with a run from the hook already gets no second one unless ``force``.
    """
    err = err or sys.stderr
    try:
        from gitml.hooks.postcommit import log_commit, open_plain

        result = log_commit(open_plain(path), rev, force)
    except Exception as e:  # noqa: BLE001 - a hook after a commit must never fail it
        err.write(f"gitml: warning: post-commit hook: no run logged: {_reason(e)}\n")
        return 0
    for w in result.warnings[:MAX_WARNINGS]:
        err.write(f"gitml: warning: {_line(w)}\n")
    if len(result.warnings) > MAX_WARNINGS:
        err.write(f"gitml: warning: ... and {len(result.warnings) - MAX_WARNINGS} more warnings\n")
    if result.existing and result.commit:
        err.write(f"gitml: commit {result.commit[:7]} has run {result.existing[:12]} from the hook already; "
                  "not logged again (--force logs another)\n")
    if result.run_id and result.commit:
        err.write(f"gitml: logged run {result.run_id[:12]} for commit {result.commit[:7]} ({result.params} params, "
                  f"{result.metrics} metrics from {', '.join(result.files) or 'no file'})\n")
    return 0


def pre_push(path: str, remote: str, stdin: str, err: TextIO | None = None) -> int:
    """Push gitml's refs to ``remote``; report on ``err``. 1 (stop the push) only when strict and failed."""
    err = err or sys.stderr
    strict = False
    try:
        from gitml.hooks import config
        from gitml.hooks.prepush import push_refs
        from gitml.tracking import runs

        repo = runs.open_repo(path)
        settings = config.load(repo.git_dir)
        strict = settings.strict
        result = push_refs(repo, remote, stdin, strict)
        result.warnings[:0] = settings.warnings
    except Exception as e:  # noqa: BLE001 - only a strict setup may stop the user's push, and on purpose
        if strict:
            err.write(f"gitml: pre-push hook: runs not pushed: {_reason(e)}. The push is stopped because "
                      "gitml.hooks.strict is true: fix this and push again, or push with --no-verify.\n")
            return 1
        err.write(f"gitml: warning: pre-push hook: runs not pushed: {_reason(e)}\n")
        return 0
    for w in result.warnings:
        err.write(f"gitml: warning: {_line(w)}\n")
    if result.sent:
        sent = result.sent[0] if len(result.sent) == 1 else f"{', '.join(result.sent[:-1])} and {result.sent[-1]}"
        err.write(f"gitml: pushed {sent} to {remote}\n")
    if result.failure is not None and result.block:
        err.write(f"gitml: {_line(result.failure)}. The push is stopped because gitml.hooks.strict is true: "
                  "fix this and push again, or push with --no-verify to skip gitml's hook.\n")
        return 1
    if result.failure:
        err.write(f"gitml: warning: {_line(result.failure)}. Your push goes on.\n")
    return 0


def main(argv: list[str]) -> int:
    """``python -m gitml.hooks ...``: run in the repository around the current directory."""
    if argv[:1] == ["post-commit"] and len(argv) in (1, 3) and (len(argv) == 1 or argv[1] == "--rev"):
        return post_commit(".", argv[2] if len(argv) == 3 else "HEAD")
    if argv[:1] == ["pre-push"] and len(argv) in (2, 3):
        stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
        return pre_push(".", argv[1], stdin)
    sys.stderr.write(USAGE + "\n")
    return 2
