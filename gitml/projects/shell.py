"""Where each placeholder of an MLproject command sits in bash's quoting, and how a value goes there.

MLflow formats the command template with ``shlex.quote``d values. That is
safe only where the placeholder is unquoted: inside ``"..."`` the inserted
``'...'`` has no power, so ``$(...)``, backticks, ``$VAR``, ``\\`` and ``"``
in a value act (issue 14). Here the template is scanned as bash reads it,
and each value is written in the form that keeps it literal where it lands:

============  ===========================  ======================================
context       example                      the value is written
============  ===========================  ======================================
unquoted      ``echo {x}``                 ``shlex.quote``: ``'it'"'"'s'``
``'...'``     ``echo 'x={x}'``             ``'`` as ``'\\''`` (close, quote, reopen)
``"..."``     ``echo "x={x}"``             ``\\ $ ` "`` backslash-escaped
``$'...'``    ``printf $'{x}\\n'``           ``\\`` and ``'`` backslash-escaped
============  ===========================  ======================================

Each form gives bash back exactly the value's characters, as part of the
same word. Where no form does, the placeholder is refused with the reason:
inside backticks, ``${...}``, arithmetic (``$((...))``, ``((...))``,
``$[...]``), a comment, after a here-document (``<<``), right after ``$``
or after a backslash that would escape the value's first character, or
after a construct the scanner does not follow (``case`` inside ``$(...)``).

``!`` needs nothing: ``bash -c`` is not interactive, so history expansion
is off. What the program then does with its argument (``eval``, ``bash
-c``, ``let``, ``[[ $x -eq ... ]]``) is the template author's choice.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

UNQUOTED = "unquoted"
SINGLE = "single-quoted"
DOUBLE = "double-quoted"
ANSI_C = "$'...'-quoted"

# Characters after which a '#' starts a comment (or before which a word starts).
_WORD_BREAK = set(" \t\n;&|()<>")


@dataclass(frozen=True)
class Slot:
    """Where one placeholder sits: its quoting ``context``, or why no value may go there (``refusal``)."""

    context: str
    refusal: str | None = None


@dataclass
class _Frame:
    kind: str  # "cmd" (top level or $(...)), "sq", "dq", "ansi", "backtick", "param", "arith", "comment"
    depth: int = 0  # open parentheses (cmd, arith) or brackets ($[...]) not yet closed
    closer: str = ""  # what ends an arith frame: ")" or "]"


class Scanner:
    """Follows bash's quoting through the literal text of a template, one piece at a time."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = [_Frame("cmd")]
        self.prev = ""  # the previous character as bash sees it ("" at the start, "w" after a value)
        self.escaped = False  # the previous character was an unescaped backslash (escapes the next)
        self.heredoc = False
        self.unfollowed: str | None = None
        self.word: list[str] = []  # the unquoted word being read in a cmd frame (to spot 'case')

    @property
    def top(self) -> _Frame:
        return self.stack[-1]

    def feed(self, text: str) -> None:
        """Advance over literal template text."""
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def slot(self) -> Slot:
        """The context of a placeholder at the current position."""
        kind = self.top.kind
        context = {"cmd": UNQUOTED, "sq": SINGLE, "dq": DOUBLE, "ansi": ANSI_C}.get(kind, kind)
        refusal = self._refusal(kind)
        # The value continues the current word: no '#' after it starts a comment, no '$' before it.
        self.prev, self.word, self.escaped = "w", [], False
        return Slot(context, refusal)

    def end(self) -> str | None:
        """Why arguments may not be appended after the whole template, or None if they may."""
        if self.unfollowed:
            return self.unfollowed
        if self.heredoc:
            return "the command has a here-document (<<), which the arguments would land in"
        if self.escaped:
            return "the command ends with a backslash"
        names = {"sq": "inside '...'", "dq": 'inside "..."', "ansi": "inside $'...'", "backtick": "inside `...`",
                 "param": "inside ${...}", "arith": "inside an arithmetic expression", "comment": "in a comment"}
        for frame in reversed(self.stack):
            if frame.kind in names:
                return f"the command ends {names[frame.kind]}"
            if frame.kind == "cmd" and frame is not self.stack[0]:
                return "the command ends inside $(...)"
        return None

    def _refusal(self, kind: str) -> str | None:
        if self.unfollowed:
            return self.unfollowed
        if kind == "comment":
            return "it is in a shell comment (a newline in the value would end it)"
        if kind == "backtick":
            return "it is inside `...` (write $(...) instead)"
        if kind == "param":
            return "it is inside ${...}"
        if kind == "arith":
            return "it is inside an arithmetic expression, which evaluates its text as code"
        if self.heredoc:
            return "it comes after a here-document (<<), whose body no quoting protects"
        if self.escaped and kind != "sq":
            return "it follows a backslash, which would escape the value's first character"
        if self.prev == "$" and kind in ("cmd", "dq"):
            return "it follows a '$', which would make the value part of an expansion"
        return None

    def _push(self, kind: str, **kw: object) -> None:
        self.stack.append(_Frame(kind, **kw))  # type: ignore[arg-type]

    def _step(self, text: str, i: int) -> int:
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        frame = self.top
        kind = frame.kind
        if self.escaped:  # the character a backslash escaped: literal (a newline: a line continuation)
            self.escaped = False
            self.prev = "w"
            return i + 1
        if kind == "sq":
            if c == "'":
                self.stack.pop()
            self.prev = "w"
            return i + 1
        if kind == "comment":
            if c == "\n":
                self.stack.pop()
                self.prev = " "
            return i + 1
        if kind == "ansi":
            if c == "\\":
                self.escaped = True
            elif c == "'":
                self.stack.pop()
            self.prev = "w"
            return i + 1
        if kind == "backtick":
            if c == "\\":
                self.escaped = True
            elif c == "`":
                self.stack.pop()
            self.prev = "w"
            return i + 1
        if kind == "param":
            if c == "\\":
                self.escaped = True
            elif c == "}":
                self.stack.pop()
            elif c in "'\"`$" and self.unfollowed is None:
                self.unfollowed = "gitml does not follow quotes or expansions inside ${...} before it"
            self.prev = "w"
            return i + 1
        if kind == "arith":
            opener = "(" if frame.closer == ")" else "["
            if c == opener:
                frame.depth += 1
            elif c == frame.closer:
                frame.depth -= 1
                if frame.depth == 0:
                    self.stack.pop()
            self.prev = "w"
            return i + 1
        # cmd or dq: the two contexts where $, backticks and backslashes act.
        if c == "\\":
            self.escaped = True
            return i + 1
        if c == "$" and self.prev != "$":
            if text.startswith("$((", i):
                self._push("arith", depth=2, closer=")")
                self.prev = "w"
                return i + 3
            if nxt == "(":
                self._push("cmd")
                self.prev, self.word = "(", []
                return i + 2
            if nxt == "{":
                self._push("param")
                return i + 2
            if nxt == "[":
                self._push("arith", depth=1, closer="]")
                return i + 2
            if kind == "cmd" and nxt == "'":
                self._push("ansi")
                return i + 2
            if kind == "cmd" and nxt == '"':
                self._push("dq")
                return i + 2
            self.prev = "$"
            return i + 1
        if c == "`":
            self._push("backtick")
            return i + 1
        if kind == "dq":
            if c == '"':
                self.stack.pop()
            self.prev = "w"
            return i + 1
        # cmd
        at_word_start = self.prev in ("", " ", "(") or self.prev in _WORD_BREAK
        if c == "'":
            self._push("sq")
        elif c == '"':
            self._push("dq")
        elif c == "#" and at_word_start:
            self._push("comment")
            return i + 1
        elif c == "<" and text.startswith("<<", i) and not text.startswith("<<<", i):
            self.heredoc = True
            self.prev = "<"
            return i + 2
        elif c == "<" and text.startswith("<<<", i):
            self.prev = "<"
            return i + 3
        elif c == "(" and nxt == "(" and at_word_start:
            self._push("arith", depth=2, closer=")")
            self.prev = "w"
            return i + 2
        elif c == "(":
            frame.depth += 1
        elif c == ")":
            if frame.depth:
                frame.depth -= 1
            elif len(self.stack) > 1:
                self.stack.pop()
        if c in _WORD_BREAK:
            if "".join(self.word) == "case" and len(self.stack) > 1 and self.unfollowed is None:
                # a case pattern's ')' would look like the end of $(...)
                self.unfollowed = "gitml does not follow a case statement inside $(...) before it"
            self.word = []
            self.prev = " " if c in " \t\n" else c
        else:
            self.word.append(c)
            self.prev = "w"
        return i + 1


def encode(value: str, context: str) -> str:
    """``value`` written so that bash reads it back literally in ``context``."""
    if context == UNQUOTED:
        return shlex.quote(value)
    if context == SINGLE:
        return value.replace("'", "'\\''")
    if context == DOUBLE:
        return "".join("\\" + ch if ch in '\\$`"' else ch for ch in value)
    if context == ANSI_C:
        return value.replace("\\", "\\\\").replace("'", "\\'")
    raise ValueError(f"no encoding for a value {context}")
