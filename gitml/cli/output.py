"""Output helpers shared by commands: JSON, plain aligned tables, and terminal-safe streams."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, TextIO

import click

# Characters a terminal acts on rather than shows: C0 controls (ESC starts escape sequences
# that can rewrite the screen or the title), DEL, C1 controls (0x9b is a one-byte CSI),
# bidirectional overrides (text that reads differently than it is), line and paragraph
# separators. Newline and tab stay; carriage return stays on stderr (progress bars use it).
_UNSAFE = {c: f"\\u{c:04x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
                                         *range(0x2066, 0x206A), 0x2028, 0x2029) if c not in (0x09, 0x0A)}
_UNSAFE_STDOUT = {**_UNSAFE}
_UNSAFE_STDERR = {c: v for c, v in _UNSAFE.items() if c != 0x0D}


class SafeStream:
    """A text stream that writes what user data holds as visible ``\\uXXXX`` escapes.

    Run names, tags, commit messages and registry comments can come from a
    teammate's push; printed raw, an escape sequence in one can clear the
    screen, retitle the terminal or hide text. The escapes are JSON's own, so
    ``--json`` output stays valid and decodes to the original text.
    """

    def __init__(self, stream: TextIO, table: dict[int, str]) -> None:
        self._stream = stream
        self._table = table

    def write(self, text: str) -> int:
        self._stream.write(text.translate(self._table))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def safe_streams() -> tuple[TextIO, TextIO]:
    """Install terminal-safe ``sys.stdout``/``sys.stderr`` (idempotent); return the previous ones."""
    import sys

    before = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout, _UNSAFE_STDOUT)  # type: ignore[assignment]
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr, _UNSAFE_STDERR)  # type: ignore[assignment]
    return before


def raw_stderr() -> TextIO:
    """stderr without the escaping of ``safe_streams`` (for text gitml wrote itself)."""
    import sys

    stream = sys.stderr
    return stream._stream if isinstance(stream, SafeStream) else stream


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows under headers, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def fmt_num(value: float) -> str:
    return f"{value:.6g}"
