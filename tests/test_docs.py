"""The docs name what exists: every setting, CLI command and module (as datasette's tests/test_docs.py does).

One case per setting, command and module, so a failure names what to document.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gitml import settings
from gitml.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "gitml"


@functools.cache
def docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))


# -- settings: the table in docs/tracking.md ------------------------------------------------

SETTINGS_HEADING = "## Settings and environment variables"


@functools.cache
def settings_table(text: str | None = None) -> dict[str, list[str]]:
    """The rows of the settings table (environment variable, git config key, default, meaning),
    by environment variable, without the backticks."""
    text = text if text is not None else (DOCS / "tracking.md").read_text()
    section = text.split(SETTINGS_HEADING, 1)[1]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
        elif rows and not line.startswith("|"):
            break  # the table ended
    return rows


@pytest.mark.parametrize("name", list(settings.SETTINGS))
def test_setting_is_documented(name):
    setting = settings.SETTINGS[name]
    row = settings_table().get(setting.env)
    assert row is not None, f"add {setting.env} to the table under {SETTINGS_HEADING!r} in docs/tracking.md"
    assert row[1] == (settings.config_key(name) if setting.git_config else ""), "its git config key"


def test_settings_table_names_only_settings():
    assert sorted(set(settings_table()) - {s.env for s in settings.SETTINGS.values()}) == []


def test_settings_table_check_fails_without_the_row():
    text = (DOCS / "tracking.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `GITML_RUN_ID`"))
    assert "GITML_RUN_ID" not in settings_table(text.replace(row + "\n", ""))


# -- CLI: every command and subcommand -----------------------------------------------------


def walk(cmd: click.Command, path: str = "gitml") -> Iterator[tuple[str, click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, f"{path} {name}")


COMMANDS = dict(walk(main))


def documented(command: str, text: str) -> bool:
    """``gitml runs list`` appears in ``text`` (and not only as the start of ``gitml runs listing``)."""
    return re.search(re.escape(command) + r"(?![\w-])", text) is not None


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "gitml"])
def test_command_is_documented(command):
    assert documented(command, docs_text()), f"no docs/*.md shows `{command}`"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_has_help(command):
    cmd = COMMANDS[command]
    summary = (cmd.short_help or cmd.help or "").strip().splitlines()
    assert summary, f"{command} has no help text"
    result = CliRunner().invoke(main, [*command.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert summary[0].split(".")[0][:40] in result.output


def test_command_check_fails_without_the_line():
    command = "gitml hooks run pre-push"
    text = docs_text()
    assert documented(command, text)
    assert not documented(command, "\n".join(line for line in text.splitlines() if command not in line))


# -- the module map at the top of docs/architecture.md -----------------------------------------


def module_map(text: str | None = None) -> dict[str, str]:
    """The map's text by the package each line is in ('' for gitml/ itself, 'store', 'hooks/scripts'...).

    The map is an indented tree: ``store/`` opens a package, deeper lines are its
    modules, and a line indented past its package's name continues the package's own line.
    """
    text = text if text is not None else (DOCS / "architecture.md").read_text()
    block = text.split("```\ngitml/\n", 1)[1].split("```", 1)[0]
    owned: dict[str, str] = defaultdict(str)
    stack = [(0, "")]  # (indent, package)
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        first = line.split()[0]
        if first.endswith("/"):
            stack.append((indent, "/".join(filter(None, [stack[-1][1], first.rstrip("/")]))))
        owned[stack[-1][1]] += line + "\n"
    return owned


MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def listed(module: str, owned: dict[str, str]) -> bool:
    """``store/repo.py`` is named on a line of ``store/``; a package's ``__init__.py`` by its own line."""
    package, _, name = module.rpartition("/")
    if name == "__init__.py" and package:
        return package in owned
    return re.search(rf"(?<![\w./]){re.escape(name)}(?!\w)", owned.get(package, "")) is not None


@pytest.mark.parametrize("module", MODULES)
def test_module_is_in_the_architecture_map(module):
    assert listed(module, module_map()), f"add {module} to the module map in docs/architecture.md"


def test_module_map_names_only_modules():
    named = {f"{package}/{name}".lstrip("/") for package, text in module_map().items()
             for name in re.findall(r"(?<![\w./])(\w+\.py)(?!\w)", text)}
    assert sorted(named - set(MODULES)) == []


def test_module_map_check_fails_without_the_line():
    text = (DOCS / "architecture.md").read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith("livelog.py "))
    assert listed("store/livelog.py", module_map(text))
    assert not listed("store/livelog.py", module_map(text.replace(line + "\n", "")))
