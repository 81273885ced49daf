"""Test support: put this process's tracking state back as a fresh interpreter has it.

gitml keeps per-process state on purpose (one writer per run, one SQLite
index per repository, the active experiment, the tracking URI), so a test
suite that opens many repositories in one process needs one way to forget
them between tests. This module is that way; tests call ``reset()`` rather
than reaching for the private names it clears.
"""

from __future__ import annotations

from gitml.tracking import fluent, ledger, process, runs


def reset() -> None:
    """End this process's active runs, commit and close its writers, close and forget its run indexes
    and opened repositories, and unset the tracking URI and the active experiment.

    What the writers held is committed (as at interpreter exit), not dropped.
    """
    while fluent.active_run() is not None:
        fluent.end_run()
    process.close_writers()
    for idx in list(runs._indexes.values()):
        idx.close()
    runs._indexes.clear()
    runs._repos.clear()
    ledger.forget()
    fluent.set_tracking_uri(None)
    fluent._experiment_id = None
    fluent._last_run_id = None
