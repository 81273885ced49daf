"""The hooks' settings: ``git config gitml.hooks.<name>``, in one table.

The table drives reading, ``gitml hooks status`` and the docs. The hook
scripts read ``params``, ``metrics``, ``always`` and ``strict`` in the shell
too (``git config --get``/``--bool``), with the same defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREFIX = "gitml.hooks."


@dataclass(frozen=True)
class HookSetting:
    name: str
    default: str | bool | int | tuple[str, ...] | None
    type: type
    help: str

    @property
    def key(self) -> str:
        return PREFIX + self.name


SETTINGS: dict[str, HookSetting] = {
    s.name: s
    for s in (
        HookSetting("params", ("params.yaml",), tuple,
                    "Params files (comma-separated git pathspecs, relative to the repository root)."),
        HookSetting("metrics", ("metrics.json", "metrics.yaml"), tuple,
                    "Metrics files (comma-separated git pathspecs, relative to the repository root)."),
        HookSetting("always", False, bool,
                    "Log a run on every commit, not only on commits that change a params or metrics file."),
        HookSetting("experiment", None, str,
                    "Experiment (by name, created if needed) for the runs post-commit logs (default: Default)."),
        HookSetting("strict", False, bool,
                    "Block the push when pre-push cannot push gitml's refs (default: warn and push the branch)."),
        HookSetting("maxkeys", 1000, int,
                    "Most params, and most metrics, post-commit logs for one commit (the rest are named in a warning)."),
    )
}


@dataclass(frozen=True)
class HookConfig:
    params: tuple[str, ...]
    metrics: tuple[str, ...]
    always: bool
    experiment: str | None
    strict: bool
    maxkeys: int = 1000
    warnings: tuple[str, ...] = ()  # values that were not understood (and counted as the default)


def split_paths(raw: str) -> tuple[str, ...]:
    """``" a.yaml, b/*.json,"`` -> ``("a.yaml", "b/*.json")`` (as the hook script splits them)."""
    return tuple(p.strip(" \t") for p in raw.split(",") if p.strip(" \t"))


def parse_bool(raw: str | None) -> bool | None:
    """A git config boolean, as ``git config --bool`` reads it (a key without a value is true); None if not one."""
    if raw is None:
        return True
    value = raw.strip().lower()
    if value in ("true", "yes", "on"):
        return True
    if value in ("false", "no", "off", ""):
        return False
    try:
        return int(value) != 0  # git reads any integer: 0 is false
    except ValueError:
        return None


def load(git_dir: str | Path) -> HookConfig:
    """The hooks' settings for the repository at ``git_dir`` (repository, global and system config).

    A boolean git would refuse counts as false, as it does in the hook
    scripts (``git config --bool`` fails there), and is named in ``warnings``.
    """
    from gitml.store.gitcli import config

    raw = config(git_dir, PREFIX)
    values: dict[str, object] = {}
    warnings = []
    for name, s in SETTINGS.items():
        if s.key not in raw:
            values[name] = s.default
        elif s.type is bool:
            parsed = parse_bool(raw[s.key])
            if parsed is None:
                warnings.append(f"git config {s.key}={raw[s.key]!r} is not a boolean (true or false); taken as false")
            values[name] = bool(parsed)
        elif s.type is tuple:
            values[name] = split_paths(raw[s.key] or "")
        elif s.type is int:
            text = (raw[s.key] or "").strip()
            if text.isdigit() and int(text) > 0:
                values[name] = int(text)
            else:
                warnings.append(f"git config {s.key}={raw[s.key]!r} is not a positive whole number; "
                                f"taken as {s.default}")
                values[name] = s.default
        else:
            values[name] = (raw[s.key] or "").strip() or s.default
    return HookConfig(**values, warnings=tuple(warnings))  # type: ignore[arg-type]
