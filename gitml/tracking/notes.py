"""The git note gitml keeps on each source commit: one line per run.

Readable in ``git log --notes=gitml``:

```
Notes (gitml):
    run 3f2a...9c FINISHED "baseline" rmse=0.75 r2=0.91
    run 81bc...04 FAILED "lr-sweep" (uncommitted changes: 1a2b3c4)
```
Notes are derived from the run refs (``gitml reindex`` rebuilds them), so
a line is replaced by run id, and lines of other runs are kept as they are.
"""

from __future__ import annotations

import json
import re

from gitml.store import names
from gitml.store.repo import GitRepo
from gitml.tracking.runfiles import RunState

_LINE_RE = re.compile(r"^run ([0-9a-f]{32}) ")


def run_line(state: RunState, max_metrics: int) -> str:
    """The note line for one run."""
    info = state.info
    parts = [f"run {state.run_id}", info["status"]]
    if info.get("run_name"):
        parts.append(json.dumps(info["run_name"], ensure_ascii=False))
    if info.get("lifecycle_stage") == "deleted":
        parts.append("[deleted]")
    metrics = sorted(state.summary.items())[:max_metrics]
    parts += [f"{k}={v:.6g}" for k, (v, _, _) in metrics]
    source = info.get("source") or {}
    if source.get("dirty"):
        parts.append(f"(uncommitted changes: {str(source.get('commit'))[:7]})")
    return " ".join(parts)


def merge_line(old: str | None, run_id: str, line: str | None) -> str | None:
    """Note text with the line of ``run_id`` replaced (None removes it)."""
    lines = [ln for ln in (old or "").splitlines() if ln.strip()]
    kept = [ln for ln in lines if not (m := _LINE_RE.match(ln)) or m.group(1) != run_id]
    if line is not None:
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else None


def note_runs(text: str) -> list[str]:
    """Run ids listed in a note, in order."""
    return [m.group(1) for ln in text.splitlines() if (m := _LINE_RE.match(ln))]


def update_run_note(repo: GitRepo, state: RunState, max_metrics: int) -> None:
    """Write (or refresh) the run's line in the note on its source commit."""
    source = state.info.get("source") or {}
    target = source.get("head") or source.get("commit")
    if not target:
        return
    line = run_line(state, max_metrics)
    repo.update_note(
        names.NOTES_REF,
        target,
        lambda old: merge_line(old, state.run_id, line),
        f"gitml: note for run {state.run_id}\n",
    )
