"""Progress bars for long commands, and the options every command shares (``--json``, ``--quiet``).

Domain functions report progress through a plain callback,
``progress(phase, done, total)``; this module turns the calls into tqdm
bars on stderr, one per phase. The bars show only on a terminal (tqdm's
``disable=None``) and never with ``--quiet``, so scripts and ``--json``
output stay clean.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# What each phase counts; a phase not listed counts items.
_UNITS = {"walk": "commit", "scan": "object", "remove": "object", "artifacts": "file", "index": "run",
          "notes": "run", "recover": "log", "store": "B", "download": "B", "merging refs": "ref"}


def json_option(help: str = "Print JSON.") -> Callable[[F], F]:
    """``--json``: the one spelling of machine-readable output across commands."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(f: F) -> F:
    """``-q/--quiet``: no progress bars (they never show when stderr is not a terminal)."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars.")(f)


class Bars:
    """tqdm bars keyed by phase, fed by ``bars(phase, done, total)``; use as a context manager.

    Phases come one after another (git's counting, then writing objects; gc's walk, then its
    scan), so a new phase closes the bars before it: one line on the terminal at a time. The
    bars are written to the real stderr, not the escaping ``SafeStream`` (their text is
    gitml's own, and tqdm's redraw needs its carriage returns).
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._bars: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        bar = self._bars.get(phase)
        if bar is None:
            from tqdm import tqdm

            from gitml.cli.output import raw_stderr

            self.close()

            unit = _UNITS.get(phase) or ("object" if phase.endswith("objects") else
                                         "delta" if phase.endswith("deltas") else "it")
            bar = self._bars[phase] = tqdm(
                total=total, unit=unit, desc=phase, leave=False, dynamic_ncols=True, file=raw_stderr(),
                disable=True if self.quiet else None,
                **({"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}),
            )
        bar.total = total
        bar.update(done - bar.n)  # through update(), so tqdm's rate and ETA are right
        if done >= total:
            bar.refresh()  # the finished state is drawn even inside tqdm's redraw interval

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
