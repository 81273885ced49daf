"""The git note gitml keeps on each source commit: one line per run.

Readable in ``git log --notes=gitml``:

```
Notes (gitml):
    run 3f2a...9c FINISHED "baseline" rmse=0.75 r2=0.91
    run 81bc...04 FAILED "lr-sweep" (uncommitted changes: 1a2b3c4)
```
Notes are derived from the run refs (``gitml reindex`` rebuilds them), so
a line is replaced by run id, and lines of other runs are kept as they are.

Lines are written in batches: a commit that ends a run (or deletes or
restores one) queues the run's state (``queue_note``), and ``write_notes``
writes the queue in one notes commit per repository, from the background
flusher, ``flush_all``, recovery and the exit hook.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from functools import partial

from gitml import settings
from gitml.store import names
from gitml.store.repo import GitRepo
from gitml.tracking.runfiles import RunState

log = logging.getLogger("gitml")

_LINE_RE = re.compile(r"^run ([0-9a-f]{32}) ")
# A line taken from another clone's note: a run line of printable text, of a sane length.
_FOREIGN_LINE_RE = re.compile(r"run ([0-9a-f]{32}) [A-Z]+( [^\x00-\x1f\x7f\x85\u2028\u2029]*)?")
_MAX_LINE = 2000
# Characters str.splitlines() (and some viewers) take as line breaks that JSON leaves as they are.
_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def run_line(state: RunState, max_metrics: int) -> str:
    """The note line for one run."""
    info = state.info
    parts = [f"run {state.run_id}", info["status"]]
    if info.get("run_name"):
        # JSON escapes control characters (terminal escapes too); these three it leaves raw
        parts.append(json.dumps(info["run_name"], ensure_ascii=False).translate(_BREAKS))
    if info.get("lifecycle_stage") == "deleted":
        parts.append("[deleted]")
    metrics = sorted(state.summary.items())[:max_metrics]
    parts += [f"{k}={v:.6g}" for k, (v, _, _) in metrics]
    source = info.get("source") or {}
    if source.get("dirty"):
        parts.append(f"(uncommitted changes: {str(source.get('commit'))[:7]})")
    return " ".join(parts)


def merge_lines(old: str | None, new_lines: Mapping[str, str | None]) -> str | None:
    """Note text with the lines of the given runs replaced (None removes one).

    Lines of other runs keep their place; new runs are appended.
    """
    pending = dict(new_lines)
    kept: list[str] = []
    for ln in (old or "").split("\n"):
        if not ln.strip():
            continue
        m = _LINE_RE.match(ln)
        if m and m.group(1) in pending:
            line = pending.pop(m.group(1))
            if line is not None:
                kept.append(line)
        else:
            kept.append(ln)
    kept.extend(line for line in pending.values() if line is not None)
    return "\n".join(kept) + "\n" if kept else None


def note_runs(text: str) -> list[str]:
    """Run ids listed in a note, in order."""
    return [m.group(1) for ln in text.split("\n") if (m := _LINE_RE.match(ln))]


def parse_lines(text: str) -> dict[str, str]:
    """The well-formed run lines of a note written elsewhere: run id -> line (anything else is dropped)."""
    out = {}
    for ln in text.split("\n"):
        m = _FOREIGN_LINE_RE.fullmatch(ln)
        if m and len(ln) <= _MAX_LINE:
            out[m.group(1)] = ln
    return out


def update_run_notes(repo: GitRepo, states: list[RunState], max_metrics: int) -> None:
    """Write (or refresh) the lines of these runs in the notes on their source commits."""
    lines: dict[str, dict[str, str | None]] = {}
    for state in states:
        source = state.info.get("source") or {}
        target = source.get("head") or source.get("commit")
        if target:
            lines.setdefault(target, {})[state.run_id] = run_line(state, max_metrics)
    if not lines:
        return

    count = sum(len(v) for v in lines.values())
    repo.update_notes(
        names.NOTES_REF,
        {target: partial(merge_lines, new_lines=new_lines) for target, new_lines in lines.items()},
        f"gitml: notes for {count} run{'s' if count != 1 else ''}\n",
    )


def _set_to(text: str | None) -> Callable[[str | None], str | None]:
    """A note edit that replaces whatever the note held with ``text`` (None: remove it)."""
    return lambda old: text


def rebuild_notes(repo: GitRepo, states: list[RunState], max_metrics: int) -> int:
    """Rewrite ``refs/notes/gitml`` from scratch from these runs; return notes written.

    Notes are derived data: this is how ``gitml reindex`` repairs notes lost
    to a crash or garbled by a bad merge. The old notes commit stays the
    parent, so nothing is lost from history.
    """
    by_target: dict[str, list[RunState]] = {}
    for state in states:
        source = state.info.get("source") or {}
        target = source.get("head") or source.get("commit")
        if target:
            by_target.setdefault(target, []).append(state)
    edits: dict[str, Callable[[str | None], str | None]] = {}
    for target, group in by_target.items():
        group.sort(key=lambda s: (s.info.get("start_time") or 0, s.run_id))
        text = "\n".join(run_line(s, max_metrics) for s in group) + "\n"
        edits[target] = _set_to(text)
    stale = {t for t, _ in repo.note_targets(names.NOTES_REF)} - set(by_target)
    for target in stale:
        edits[target] = _set_to(None)
    if edits:
        repo.update_notes(names.NOTES_REF, edits, f"gitml: rebuild notes for {len(states)} runs\n")
    return len(by_target)


# -- the queue of note lines to write ---------------------------------------------

# git dir -> (repo, run id -> latest state queued)
_queue: dict[str, tuple[GitRepo, dict[str, RunState]]] = {}
_queue_lock = threading.Lock()
_write_lock = threading.Lock()


def queue_note(repo: GitRepo, state: RunState) -> None:
    """Queue a refresh of this run's line in its source commit's note.

    Notes are written in batches (by the background flusher, ``flush_all``
    and at exit): one notes commit for many runs instead of one per run.
    """
    with _queue_lock:
        _queue.setdefault(str(repo.git_dir), (repo, {}))[1][state.run_id] = state.copy()


def write_notes(repo: GitRepo | None = None) -> None:
    """Write the queued note lines (of one repo, or all) in one commit each.

    One writer at a time per process: the exit hook must wait for a batch
    the background flusher has already taken off the queue, or that batch
    dies with the daemon thread.
    """
    with _write_lock:
        with _queue_lock:
            keys = [k for k in _queue if repo is None or k == str(repo.git_dir)]
            batches = [_queue.pop(k) for k in keys]
        for target_repo, states in batches:
            if not (target_repo.common_dir / "objects").is_dir():
                continue  # the repository is gone (a temporary one, removed before exit)
            try:
                update_run_notes(target_repo, list(states.values()), settings.get("note_metrics", target_repo))
            except Exception as e:  # noqa: BLE001 - derived data: `gitml reindex` rebuilds notes
                log.warning("gitml: could not update git notes in %s: %s", target_repo.git_dir, e)


def _reset_queue_in_child() -> None:
    # The parent's queued lines are the parent's to write; a lock held by
    # one of its threads at the fork would never be released here.
    global _queue_lock, _write_lock
    _queue.clear()
    _queue_lock = threading.Lock()
    _write_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_queue_in_child)
