"""System metrics (``start_run(log_system_metrics=True)``): MLflow's names, steps, settings.

The names are checked against real MLflow logging system metrics on the
same machine, so a chart or search written for MLflow's keys finds gitml's.
"""

from __future__ import annotations

import time

import pytest

from gitml.errors import InvalidValue

INTERVAL = "0.05"


def system_keys(run) -> set[str]:
    return {k for k in run.data.metrics if k.startswith("system/")}


def wait_for_steps(client, run_id: str, key: str, steps: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        import gitml

        gitml.flush()
        if len(client.get_metric_history(run_id, key)) >= steps:
            return
        time.sleep(0.05)


def test_system_metrics_have_mlflows_names_and_steps(tracking, monkeypatch, tmp_path):
    monkeypatch.setenv("GITML_SYSTEM_METRICS_SAMPLING_INTERVAL", INTERVAL)
    client = tracking.MlflowClient()
    with tracking.start_run(log_system_metrics=True) as run:
        wait_for_steps(client, run.info.run_id, "system/disk_usage_percentage", 3)
    ours = system_keys(tracking.get_run(run.info.run_id))
    history = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 3
    assert all(m.value > 0 for m in history)

    import mlflow

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # an experiment of this database (another test may have left MLflow's active one pointing elsewhere)
        with mlflow.start_run(experiment_id=mlflow.create_experiment("system"), log_system_metrics=True) as theirs:
            time.sleep(1.0)
        names = {k for k in mlflow.get_run(theirs.info.run_id).data.metrics if k.startswith("system/")}
    finally:
        mlflow.set_tracking_uri(None)
    assert names and {k for k in ours if "/gpu_" not in k} == {k for k in names if "/gpu_" not in k}


def test_off_by_default_and_the_setting_turns_it_on(tracking, monkeypatch):
    monkeypatch.setenv("GITML_SYSTEM_METRICS_SAMPLING_INTERVAL", INTERVAL)
    with tracking.start_run() as plain:
        time.sleep(0.3)
    assert system_keys(tracking.get_run(plain.info.run_id)) == set()

    tracking.enable_system_metrics_logging()
    try:
        client = tracking.MlflowClient()
        with tracking.start_run() as on:
            wait_for_steps(client, on.info.run_id, "system/disk_usage_percentage", 1)
        with tracking.start_run(log_system_metrics=False) as off:
            time.sleep(0.3)
    finally:
        tracking.disable_system_metrics_logging()
    assert "system/cpu_utilization_percentage" in system_keys(tracking.get_run(on.info.run_id))
    assert system_keys(tracking.get_run(off.info.run_id)) == set()


def test_a_resumed_run_goes_on_after_its_last_step_and_node_ids_name_the_machine(tracking, monkeypatch):
    monkeypatch.setenv("GITML_SYSTEM_METRICS_SAMPLING_INTERVAL", INTERVAL)
    client = tracking.MlflowClient()
    key = "system/disk_usage_percentage"
    with tracking.start_run(log_system_metrics=True) as run:
        wait_for_steps(client, run.info.run_id, key, 2)
    first = [m.step for m in client.get_metric_history(run.info.run_id, key)]
    tracking.set_system_metrics_node_id("node-1")
    try:
        with tracking.start_run(run_id=run.info.run_id, log_system_metrics=True):
            wait_for_steps(client, run.info.run_id, "system/node-1/disk_usage_percentage", 2)
    finally:
        tracking.set_system_metrics_node_id(None)
    node_steps = [m.step for m in client.get_metric_history(run.info.run_id, "system/node-1/disk_usage_percentage")]
    assert node_steps[0] == max(first) + 1
    assert node_steps == list(range(node_steps[0], node_steps[0] + len(node_steps)))


def test_a_bad_setting_is_refused_before_a_run_starts(tracking, monkeypatch):
    monkeypatch.setenv("GITML_SYSTEM_METRICS_SAMPLING_INTERVAL", "0")
    with pytest.raises(InvalidValue, match="GITML_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        tracking.start_run(log_system_metrics=True)
    assert tracking.active_run() is None
    monkeypatch.delenv("GITML_SYSTEM_METRICS_SAMPLING_INTERVAL")
    assert tracking.search_runs(output_format="list") == []
    with pytest.raises(InvalidValue, match="samples_before_logging"):
        tracking.set_system_metrics_samples_before_logging(0)
