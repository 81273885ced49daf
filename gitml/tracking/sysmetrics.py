"""System metrics: the machine's CPU, memory, disk, network and GPU use, logged into a run.

What MLflow's ``start_run(log_system_metrics=True)`` does, with its metric
names, so charts and searches carry over: a daemon thread takes a sample
every ``system_metrics_sampling_interval`` seconds (default 10), and after
``system_metrics_samples_before_logging`` samples (default 1) logs their
mean as ``system/<name>`` at the next step (0, 1, 2...; a resumed run goes
on after its last system step). ``system_metrics_node_id`` adds a
``<node>/`` level for multi-node jobs. Samples come from psutil; GPUs from
NVIDIA's NVML (``nvidia-ml-py``) when it is installed and finds a device.

| metric | what |
| --- | --- |
| ``system/cpu_utilization_percentage`` | all CPUs, since the last sample |
| ``system/system_memory_usage_megabytes``, ``..._percentage`` | used memory |
| ``system/disk_usage_megabytes``, ``..._percentage``, ``system/disk_available_megabytes`` | the root file system |
| ``system/network_receive_megabytes``, ``system/network_transmit_megabytes`` | since monitoring started |
| ``system/gpu_<i>_memory_usage_megabytes``, ``..._percentage``, ``_utilization_percentage``, ``_power_usage_watts``, ``_power_usage_percentage`` | each NVIDIA GPU |

The points go through the run's writer like any ``log_metric``: a few
microseconds each, committed with the run's next flush.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from gitml import settings
from gitml.tracking.writer import RunWriter

log = logging.getLogger("gitml")

PREFIX = "system/"

# run id -> its monitor in this process
_monitors: dict[str, Monitor] = {}
_lock = threading.Lock()


def enabled(repo: Any, asked: bool | None) -> bool:
    """Whether a run starting now logs system metrics: ``asked`` if given, else the setting."""
    if asked is not None:
        return bool(asked)
    return bool(settings.get("enable_system_metrics_logging", repo))


def start(writer: RunWriter, first_step: int = 0) -> Monitor | None:
    """Start monitoring into ``writer``'s run (once per run); None if psutil is missing."""
    with _lock:
        running = _monitors.get(writer.run_id)
        if running is not None:
            return running
        try:
            samplers = _samplers()
        except ImportError:
            log.warning("gitml: warning: system metrics need psutil (pip install psutil); not logging them")
            return None
        repo = writer.repo
        monitor = Monitor(
            writer, samplers,
            interval=settings.get("system_metrics_sampling_interval", repo),
            samples=settings.get("system_metrics_samples_before_logging", repo),
            node=settings.get("system_metrics_node_id", repo),
            first_step=first_step,
        )
        _monitors[writer.run_id] = monitor
    monitor.start()
    return monitor


def stop(run_id: str) -> None:
    """Stop the monitor of ``run_id`` (if this process has one); waits for its thread."""
    with _lock:
        monitor = _monitors.pop(run_id, None)
    if monitor is not None:
        monitor.stop()


def next_step(metric_steps: dict[str, int]) -> int:
    """The step after the last system metric step among ``metric_steps`` (key -> latest step)."""
    steps = [step for key, step in metric_steps.items() if key.startswith(PREFIX)]
    return max(steps) + 1 if steps else 0


class Monitor:
    """One run's sampling thread."""

    def __init__(self, writer: RunWriter, samplers: list[Sampler], interval: float, samples: int, node: str,
                 first_step: int) -> None:
        self.writer = writer
        self.samplers = samplers
        self.interval = interval
        self.samples = samples
        self.prefix = PREFIX + (f"{node}/" if node else "")
        self.step = first_step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gitml-system-metrics-{writer.run_id[:8]}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            taken: dict[str, list[float]] = {}
            for _ in range(self.samples):
                for sampler in self.samplers:
                    try:
                        for key, value in sampler.sample().items():
                            taken.setdefault(key, []).append(value)
                    except Exception as e:  # noqa: BLE001 - a failing source must not end the run
                        log.debug("gitml: system metrics: %s failed: %s", type(sampler).__name__, e)
                if self._stop.wait(self.interval):
                    return  # stopped mid-way: the partial samples are dropped, as MLflow does
            now = time.time_ns() // 1_000_000
            try:
                for key, values in taken.items():
                    # counters since the start (network) are reported as they are now, the rest averaged
                    value = values[-1] if key.startswith("network_") else round(sum(values) / len(values), 1)
                    self.writer.log_metric(self.prefix + key, value, self.step, now)
            except Exception as e:  # noqa: BLE001 - the run ended under us
                log.debug("gitml: system metrics stopped: %s", e)
                return
            self.step += 1


class Sampler:
    """One source of samples: name -> value now."""

    def sample(self) -> dict[str, float]:
        raise NotImplementedError


def _samplers() -> list[Sampler]:
    import psutil  # noqa: F401 - ImportError here means: no system metrics

    found: list[Sampler] = [_Cpu(), _Disk(), _Network()]
    gpu = _Gpu.open()
    if gpu is not None:
        found.append(gpu)
    return found


class _Cpu(Sampler):
    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        psutil.cpu_percent()  # the first call only starts psutil's interval

    def sample(self) -> dict[str, float]:
        memory = self.psutil.virtual_memory()
        return {
            "cpu_utilization_percentage": self.psutil.cpu_percent(),
            "system_memory_usage_megabytes": memory.used / 1e6,
            "system_memory_usage_percentage": memory.used / memory.total * 100,
        }


class _Disk(Sampler):
    def sample(self) -> dict[str, float]:
        import psutil

        usage = psutil.disk_usage(os.sep)
        return {
            "disk_usage_percentage": usage.percent,
            "disk_usage_megabytes": usage.used / 1e6,
            "disk_available_megabytes": usage.free / 1e6,
        }


class _Network(Sampler):
    def __init__(self) -> None:
        import psutil

        self.counters: Callable[[], Any] = psutil.net_io_counters
        start = self.counters()
        self.start = (start.bytes_recv, start.bytes_sent) if start is not None else (0, 0)

    def sample(self) -> dict[str, float]:
        now = self.counters()
        if now is None:  # no network interface
            return {}
        return {
            "network_receive_megabytes": (now.bytes_recv - self.start[0]) / 1e6,
            "network_transmit_megabytes": (now.bytes_sent - self.start[1]) / 1e6,
        }


class _Gpu(Sampler):
    """NVIDIA GPUs through NVML (``pip install nvidia-ml-py``)."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml = nvml
        self.handles = handles

    @classmethod
    def open(cls) -> _Gpu | None:
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            return cls(pynvml, [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]) if count else None
        except Exception:  # noqa: BLE001 - not installed, no driver, no device: no GPU metrics
            return None

    def sample(self) -> dict[str, float]:
        nvml, out = self.nvml, {}
        for i, handle in enumerate(self.handles):
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                out[f"gpu_{i}_memory_usage_percentage"] = memory.used / memory.total * 100
                out[f"gpu_{i}_memory_usage_megabytes"] = memory.used / 1e6
                out[f"gpu_{i}_utilization_percentage"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                power = nvml.nvmlDeviceGetPowerUsage(handle)
                out[f"gpu_{i}_power_usage_watts"] = power / 1000
                out[f"gpu_{i}_power_usage_percentage"] = power / nvml.nvmlDeviceGetEnforcedPowerLimit(handle) * 100
            except Exception as e:  # noqa: BLE001 - what a device cannot tell is left out
                log.debug("gitml: system metrics: GPU %d: %s", i, e)
        return out
