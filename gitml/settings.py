"""gitml's settings in one table: name, default, help.

Precedence: explicit argument > ``GITML_<NAME>`` environment variable >
repository config (``git config gitml.<name>``) > default. Nothing is read
at import time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _non_negative(value: Any) -> bool:
    return math.isfinite(value) and value >= 0


class Duration(float):
    """Seconds, written as a number of seconds or with a unit: ``90``, ``90s``, ``30m``, ``1h``, ``2d``, ``1w``."""

    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def __new__(cls, raw: str | float) -> Duration:
        text = str(raw).strip().lower()
        unit = cls.UNITS.get(text[-1:]) if text else None
        value = float(text[:-1] if unit else text) * (unit or 1)
        return super().__new__(cls, value)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str
    #: What a parsed value must satisfy, and how to say it.
    valid: Callable[[Any], bool] = lambda value: True
    rule: str = ""
    #: False: read from the environment only, never from git config (which a work tree can include).
    git_config: bool = True

    @property
    def env(self) -> str:
        return "GITML_" + self.name.upper().replace("-", "_")


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("flush_interval", 5.0, float, "Seconds between background commits of a live run (0: none).",
                _non_negative, "a number of seconds, 0 or more"),
        Setting(
            "snapshot_max_file_size",
            10 * 1024 * 1024,
            int,
            "Files larger than this (bytes) are left out of dirty-tree snapshots.",
            _non_negative,
            "a number of bytes, 0 or more",
        ),
        Setting("repo", "", str, "Repository gitml tracks into (default: the one around the cwd).",
                git_config=False),
        Setting("note_metrics", 8, int, "How many metrics a run shows in its git note.",
                lambda n: 0 <= n <= 1000, "a whole number from 0 to 1000"),
        Setting(
            "allow_pickle",
            False,
            bool,
            "Load models that run code when loaded although gitml did not write them on this machine in "
            "this repository: pickles (scikit-learn pickle/cloudpickle, PyTorch pickle), custom PythonModels "
            "with their code and artifacts, a flavor's code directory, skops files with types beyond skops' "
            "defaults, and pt2 files that fail gitml's check. Set it only for models you trust.",
            git_config=False,
        ),
        # Read when a run starts or an experiment is needed, so a script, or `gitml run` for its
        # entry point, can set them for code it does not control.
        Setting("run_id", "", str, "start_run() without a run_id resumes this run instead of creating one.",
                git_config=False),
        Setting("experiment_id", "", str, "Active experiment when set_experiment was not called.",
                git_config=False),
        Setting("experiment_name", "", str, "Active experiment by name (created if needed) when "
                "set_experiment was not called and experiment_id is not set.", git_config=False),
        # MLflow's system metrics (MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING and its siblings)
        Setting("enable_system_metrics_logging", False, bool, "Log system metrics (CPU, memory, disk, network, "
                "GPU) into every run; start_run(log_system_metrics=...) decides for one run."),
        Setting("system_metrics_sampling_interval", 10.0, float, "Seconds between system metric samples.",
                lambda v: math.isfinite(v) and v > 0, "a number of seconds above 0"),
        Setting("system_metrics_samples_before_logging", 1, int, "System metric samples averaged into one "
                "logged point.", lambda n: 1 <= n <= 10_000, "a whole number from 1 to 10000"),
        Setting("system_metrics_node_id", "", str, "A name for this machine in system metric keys "
                "(system/<node>/...), for jobs on several nodes."),
        Setting("gc_keep_recent", Duration(3600), Duration, "gitml gc keeps artifact objects stored or "
                "logged again within this time even if nothing names them yet (90s, 30m, 1h, 2d; plain "
                "numbers are seconds).", _non_negative, "a duration such as 3600, 90s, 30m, 1h or 2d, 0 or more"),
    )
}


def config_key(name: str) -> str:
    """The git config key of a setting: ``gitml.flushinterval`` for flush_interval."""
    return "gitml." + name.replace("_", "")


def get(name: str, repo: Any = None) -> Any:
    """The value of setting ``name``: env, then ``repo``'s git config (if allowed), then the default.

    Read at each call: tests and scripts change the environment between calls.

    Raises:
        InvalidValue: the value set does not parse or breaks the setting's rule.
    """
    setting = SETTINGS[name]
    raw, source = os.environ.get(setting.env) or None, setting.env
    if raw is None and repo is not None and setting.git_config:
        raw, source = repo.config_value(config_key(name)), f"git config {config_key(name)}"
    if raw is None or raw == "":
        return setting.default
    return _parse(setting, raw, source)


def parse(name: str, raw: str, source: str) -> Any:
    """``raw`` as a value of setting ``name`` (``source`` names where it came from in the error).

    Raises:
        InvalidValue: it does not parse or breaks the setting's rule.
    """
    return _parse(SETTINGS[name], raw, source)


def _parse(setting: Setting, raw: str, source: str) -> Any:
    try:
        value = _parse_bool(raw) if setting.type is bool else setting.type(raw)
        if setting.valid(value):
            return value
    except (ValueError, OverflowError):
        pass
    from gitml.errors import InvalidValue

    rule = setting.rule or ("true or false" if setting.type is bool else f"a valid {setting.type.__name__}")
    raise InvalidValue(f"Setting {source}={raw!r} is not {rule}; fix or unset it")


def check_environment() -> None:
    """Check every ``GITML_*`` setting in the environment now, before anything is logged.

    A bad value found later (at exit, in a background thread) could leave a
    run half-written; found here it is a one-line error before the run starts.

    Raises:
        InvalidValue: naming the variable, its value and what it must be.
    """
    for setting in SETTINGS.values():
        raw = os.environ.get(setting.env)
        if raw:
            _parse(setting, raw, setting.env)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
