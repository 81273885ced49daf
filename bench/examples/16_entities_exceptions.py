# From the MLflow API docs: MlflowClient.log_batch with mlflow.entities
# (https://mlflow.org/docs/latest/python_api/mlflow.client.html#mlflow.client.MlflowClient.log_batch)
# and mlflow.exceptions.MlflowException (Apache-2.0).
import time

import mlflow
from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def print_run_info(r):
    print(f"run_id: {r.info.run_id}")
    print(f"params: {r.data.params}")
    print(f"metrics: {r.data.metrics}")
    print(f"tags: {r.data.tags}")
    print(f"status: {r.info.status}")


# Create MLflow entities and a run under the default experiment (whose id is '0').
timestamp = int(time.time() * 1000)
metrics = [Metric("m", 1.5, timestamp, 1)]
params = [Param("p", "p")]
tags = [RunTag("t", "t")]
experiment_id = "0"
client = MlflowClient()
run = client.create_run(experiment_id)

# Log entities, terminate the run, and fetch run status
client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
client.set_terminated(run.info.run_id)
run = client.get_run(run.info.run_id)
print_run_info(run)
assert run.info.status == RunStatus.to_string(RunStatus.FINISHED)
assert run.info.lifecycle_stage == LifecycleStage.ACTIVE
print(len(client.search_runs([experiment_id], run_view_type=ViewType.ALL)))

try:
    client.get_run("0123456789abcdef0123456789abcdef")
except MlflowException as e:
    print("MlflowException:", e.error_code)
    assert e.error_code == "RESOURCE_DOES_NOT_EXIST"

try:
    mlflow.log_param("lr", 0.1)
    mlflow.log_param("lr", 0.2)  # params are write-once
except MlflowException as e:
    print("MlflowException:", e.error_code)
    assert e.error_code == "INVALID_PARAMETER_VALUE"
mlflow.end_run()
