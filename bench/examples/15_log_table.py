# From the MLflow docs for mlflow.log_table / mlflow.load_table
# (https://mlflow.org/docs/latest/python_api/mlflow.html#mlflow.log_table), Apache-2.0.
import pandas as pd

import mlflow

table_dict = {
    "inputs": ["What is MLflow?", "What is Databricks?"],
    "outputs": ["MLflow is ...", "Databricks is ..."],
    "toxicity": [0.0, 0.0],
}
with mlflow.start_run() as run:
    # Log the dictionary as a table
    mlflow.log_table(data=table_dict, artifact_file="qabot_eval_results.json")
    # Logging again appends rows
    mlflow.log_table(data=pd.DataFrame.from_dict(table_dict), artifact_file="qabot_eval_results.json")
    run_id = run.info.run_id

loaded_table = mlflow.load_table(
    artifact_file="qabot_eval_results.json",
    run_ids=[run_id],
    # Append a column containing the associated run ID for each row
    extra_columns=["run_id"],
)
print(loaded_table)
assert len(loaded_table) == 4  # bench check
