# From the MLflow docs, "Search Runs" (https://mlflow.org/docs/latest/ml/search/search-runs/),
# Apache-2.0: runs with params, metrics and tags, then searches by filter, order_by,
# run view type, as a DataFrame and through MlflowClient.
import numpy as np

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType

mlflow.set_experiment("search-run-guide")

accuracy = np.arange(0, 1, 0.1)
loss = np.arange(1, 0, -0.1)
log_scale_loss = np.log(loss)
f1_score = np.arange(0, 1, 0.1)
batch_size = [2] * 5 + [4] * 5
learning_rate = [0.001, 0.01] * 5
model = ["GPT-2", "GPT-3", "GPT-3.5", "GPT-4"] + [None] * 6
task = ["classification", "regression", "causal lm"] + [None] * 7
environment = ["notebook"] * 5 + [None] * 5

dataset_name = "custom"
dataset_digest = "s8ds293b"
dataset_hash = "ab03e7b1"

for i in range(10):
    with mlflow.start_run(run_name=f"run_{i}"):
        mlflow.log_metrics({"loss": loss[i], "accuracy": accuracy[i], "log_scale_loss": log_scale_loss[i],
                            "f1 score": f1_score[i]})
        mlflow.log_params({"batch_size": batch_size[i], "learning rate": learning_rate[i]})
        mlflow.set_tags({"model": model[i], "task": task[i], "environment": environment[i]})

all_runs = mlflow.search_runs(search_all_experiments=True)
print(all_runs.shape)
bad_runs = mlflow.search_runs(filter_string="metrics.loss > 0.8", search_all_experiments=True)
print(bad_runs[["metrics.loss", "tags.mlflow.runName"]])
print(mlflow.search_runs(experiment_names=["search-run-guide"],
                         filter_string="metrics.`f1 score` < 0.5 and params.`learning rate` = '0.01'")
      [["metrics.f1 score", "params.learning rate"]])
print(mlflow.search_runs(experiment_names=["search-run-guide"], filter_string="tags.model ILIKE 'gpt-%'",
                         order_by=["metrics.accuracy DESC"])[["tags.model", "metrics.accuracy"]])
print(mlflow.search_runs(experiment_names=["search-run-guide"],
                         filter_string="attributes.run_name = 'run_1' and attributes.status = 'FINISHED'")
      [["run_id", "status"]])
first_two = ", ".join(f"'{r}'" for r in all_runs["run_id"][:2])
print(mlflow.search_runs(experiment_names=["search-run-guide"],
                         filter_string=f"attributes.run_id IN ({first_two})").shape)
print(mlflow.search_runs(experiment_names=["search-run-guide"], filter_string="tags.environment = 'notebook'",
                         order_by=["attributes.start_time ASC"]).shape)

client = MlflowClient()
experiment_id = mlflow.get_experiment_by_name("search-run-guide").experiment_id
runs = client.search_runs(
    experiment_ids=[experiment_id],
    filter_string="metrics.accuracy > 0.5",
    run_view_type=ViewType.ACTIVE_ONLY,
    max_results=3,
    order_by=["metrics.accuracy DESC"],
)
for run in runs:
    print(run.info.run_name, run.data.metrics["accuracy"])
assert [r.info.run_name for r in runs] == ["run_9", "run_8", "run_7"]  # bench check
