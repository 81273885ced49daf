"""gitml's settings in one table: name, default, help.

Precedence: explicit argument > ``GITML_<NAME>`` environment variable >
repository config (``git config gitml.<name>``) > default. Nothing is read
at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str

    @property
    def env(self) -> str:
        return "GITML_" + self.name.upper().replace("-", "_")


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("flush_interval", 5.0, float, "Seconds between background commits of a live run."),
        Setting(
            "snapshot_max_file_size",
            10 * 1024 * 1024,
            int,
            "Files larger than this (bytes) are left out of dirty-tree snapshots.",
        ),
        Setting("repo", "", str, "Repository gitml tracks into (default: the one around the cwd)."),
        Setting("note_metrics", 8, int, "How many metrics a run shows in its git note."),
        Setting(
            "allow_pickle",
            False,
            bool,
            "Load models that run code when loaded although gitml did not write them on this machine in "
            "this repository: pickles (scikit-learn pickle/cloudpickle, PyTorch pickle), custom PythonModels "
            "with their code and artifacts, skops files with types beyond scikit-learn's classes, and pt2 "
            "files that fail gitml's check. Set it only for models you trust.",
        ),
    )
}


def config_key(name: str) -> str:
    """The git config key of a setting: ``gitml.flushinterval`` for flush_interval."""
    return "gitml." + name.replace("_", "")


def get(name: str, repo: Any = None) -> Any:
    """The value of setting ``name``: env, then ``repo``'s git config, then the default."""
    setting = SETTINGS[name]
    raw, source = os.environ.get(setting.env) or None, setting.env
    if raw is None and repo is not None:
        raw, source = repo.config_value(config_key(name)), f"git config {config_key(name)}"
    if raw is None or raw == "":
        return setting.default
    try:
        return _parse_bool(raw) if setting.type is bool else setting.type(raw)
    except ValueError as e:
        from gitml.errors import InvalidValue

        raise InvalidValue(f"Setting {source}={raw!r} is not a valid {setting.type.__name__}") from e


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
