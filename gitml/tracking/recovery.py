"""Crash recovery: the live logs of dead writers turned into run commits.

A writer holds an exclusive ``flock`` on its live log for as long as its
process lives (``store/livelog.py``), so a log whose lock can be taken
belongs to a dead writer. Its events after the writer's count in the run
commit's ``Gitml-Writer`` trailer are the ones git does not have; recovery
commits exactly those, marks the run KILLED if no other writer of it is
alive, and deletes the log. A log that cannot be applied now waits in
``.git/gitml/live-failed/`` and is tried again by every full recovery.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import GitmlError
from gitml.store import ledger, livelog, names
from gitml.store.repo import GitRepo
from gitml.tracking.commit import WriterMark, commit_events, live_dir
from gitml.tracking.entities import RunStatus
from gitml.tracking.events import METRIC, Event, decode_event, parse_header
from gitml.tracking.ledger import fold
from gitml.tracking.notes import write_notes
from gitml.tracking.runfiles import RunState, read_state

if TYPE_CHECKING:
    from gitml.store.content import Progress  # a type only: the hook's path never loads the content store

log = logging.getLogger("gitml")


def failed_dir(repo: GitRepo) -> Path:
    """Where live logs that could not be applied wait."""
    return repo.git_dir / names.LIVE_FAILED_DIR


def recover(repo: GitRepo, run_id: str | None = None, progress: Progress | None = None) -> list[str]:
    """Turn the live logs of dead writers into commits; return the run ids.

    A run left RUNNING with no other live writer is marked KILLED, its
    end time the last event it logged. ``run_id`` limits this to one run.
    A log that cannot be applied now (its run is gone, a ref stays locked)
    is moved to ``.git/gitml/live-failed/`` with a warning, so it never
    blocks other commands; every later recovery tries it again, and its
    data stays on disk until it applies. Lines that do not decode are
    copied to ``<log>.rejected`` beside it and the rest is applied.
    ``progress`` hears ("recover", logs looked at, logs in the live directory).
    """
    recovered: list[str] = []
    total = _count_logs(live_dir(repo)) if progress is not None else 0
    for done, orphan in enumerate(livelog.orphan_logs(live_dir(repo), run_id), 1):
        if progress is not None:
            progress("recover", min(done, total), total)
        try:
            outcome = _recover_log(repo, orphan.path, orphan.read_lines())
            if outcome is None:
                kept = orphan.set_aside(failed_dir(repo))
                log.warning("gitml: warning: live log %s has no gitml header; set aside as %s", orphan.path.name, kept)
            elif isinstance(outcome, GitmlError):
                kept = orphan.set_aside(failed_dir(repo))
                log.warning("gitml: warning: could not recover the live log of run %s (%s); kept it as %s "
                            "(tried again by every recovery)", orphan.path.name.split(".")[0], outcome, kept)
            else:
                orphan.discard()
                recovered.append(outcome)
        except BaseException:
            orphan.release()
            raise
    if run_id is None:
        recovered += _retry_failed(repo)
    if recovered:
        write_notes(repo)
        fold(repo, recovered)
    return recovered


def _count_logs(directory: Path) -> int:
    try:
        return sum(1 for _ in directory.glob("*.log"))
    except FileNotFoundError:
        return 0


_failed_warned: set[tuple[str, str]] = set()


def _retry_failed(repo: GitRepo) -> list[str]:
    """Try the logs in ``live-failed/`` again: a lock since removed or a run since pulled lets them apply."""
    done = []
    for orphan in livelog.orphan_logs(failed_dir(repo)):
        try:
            outcome = _recover_log(repo, orphan.path, orphan.read_lines())
            if isinstance(outcome, str):
                orphan.discard()
                done.append(outcome)
                continue
            reason = str(outcome) if outcome is not None else "no gitml header"
            if (str(orphan.path), reason) not in _failed_warned:
                _failed_warned.add((str(orphan.path), reason))
                log.warning("gitml: warning: live log %s still cannot be applied (%s); its data stays there "
                            "until it can (delete it if you do not need it)", orphan.path, reason)
            orphan.release()
        except BaseException:
            orphan.release()
            raise
    return done


def pending_failed(repo: GitRepo) -> list[Path]:
    """The live logs waiting in ``live-failed/``."""
    try:
        return sorted(failed_dir(repo).glob("*.log"))
    except FileNotFoundError:
        return []


def _recover_log(repo: GitRepo, path: Path, lines: list[bytes]) -> str | GitmlError | None:
    """Apply one dead writer's log; return its run id, the error that stopped it, or None (no header)."""
    header = parse_header(lines[0]) if lines else None
    if header is None:
        return None
    log_run_id, writer_id, base = header
    keys: set[str] = set()
    events = [decode_event(ln, keys) for ln in lines[1:]]
    bad = [(n, ln) for n, (ln, ev) in enumerate(zip(lines[1:], events), start=2) if ev is None]
    try:
        _recover_one(repo, log_run_id, writer_id, base, events, path)
    except GitmlError as e:
        return e
    if bad:
        kept = _keep_rejected(repo, path, bad)
        log.warning("gitml: warning: run %s: %d malformed line%s of a dead writer's live log %s set aside in %s; "
                    "the rest was recovered", log_run_id, len(bad), "" if len(bad) == 1 else "s",
                    "was" if len(bad) == 1 else "were", kept)
    return log_run_id


def _keep_rejected(repo: GitRepo, path: Path, bad: list[tuple[int, bytes]]) -> Path:
    target = failed_dir(repo) / (path.name + ".rejected")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "ab") as f:
        f.write(b"".join(b"%d\t%s\n" % (n, ln) for n, ln in bad))
    return target


def _recover_one(repo: GitRepo, run_id: str, writer_id: str, base: int, events: list[Event | None],
                 path: Path) -> None:
    """Commit the events of one dead writer's log that git lacks; the log holds its events base+1...

    Raises:
        GitmlError: the run cannot take them now (see ``recover``).
    """
    old = ledger.run_commit(repo, run_id)
    current = read_state(repo, old, run_id)[0] if old else None
    applied = current.writers.get(writer_id, 0) if current else 0
    if applied < base:
        # The writer dropped its first ``base`` events from the log once a commit held them; this
        # run has fewer (its commit was replaced since). Those are gone: keep what is here.
        log.warning("gitml: warning: run %s lacks %d event%s of writer %s that its live log no longer holds",
                    run_id, base - applied, "" if base - applied == 1 else "s", writer_id)
    todo = [ev for ev in events[max(applied - base, 0):] if ev is not None]
    if old is None and not todo:
        return  # the writer died before logging anything
    if not todo and current is not None and current.info.get("status") != RunStatus.RUNNING:
        return  # everything is in git already (died between commit and unlink)
    last_ts = max((ev.timestamp for ev in events if ev is not None and ev.kind == METRIC), default=None)
    end_time = last_ts or int(path.stat().st_mtime * 1000)
    others = [p for p in livelog.live_writers(live_dir(repo), run_id) if p != path]

    def finalize(state: RunState) -> None:
        alive = any(livelog.is_locked(p) for p in others)
        if state.info.get("status") == RunStatus.RUNNING and not alive:
            state.info["status"] = RunStatus.KILLED
            state.info["end_time"] = max(end_time, state.info.get("start_time") or 0)

    mark = WriterMark(writer_id, base + len(events), True)
    commit_events(repo, run_id, todo, writer=mark, finalize=finalize)
