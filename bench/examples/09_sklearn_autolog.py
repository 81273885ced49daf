# From MLflow's examples/sklearn_autolog/linear_regression.py (Apache-2.0);
# utils.fetch_logged_data inlined.
from pprint import pprint

import numpy as np
from sklearn.linear_model import LinearRegression

import mlflow


def yield_artifacts(run_id, path=None):
    """Yield all artifacts in the specified run"""
    client = mlflow.MlflowClient()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            yield from yield_artifacts(run_id, item.path)
        else:
            yield item.path


def fetch_logged_data(run_id):
    """Fetch params, metrics, tags, and artifacts in the specified run"""
    client = mlflow.MlflowClient()
    data = client.get_run(run_id).data
    # Exclude system tags: https://www.mlflow.org/docs/latest/tracking.html#system-tags
    tags = {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}
    artifacts = list(yield_artifacts(run_id))
    return {"params": data.params, "metrics": data.metrics, "tags": tags, "artifacts": artifacts}


def main():
    # enable autologging
    mlflow.sklearn.autolog()

    # prepare training data
    X = np.array([[1, 1], [1, 2], [2, 2], [2, 3]])
    y = np.dot(X, np.array([1, 2])) + 3

    # train a model
    model = LinearRegression()
    with mlflow.start_run() as run:
        model.fit(X, y)
        print(f"Logged data and model in run {run.info.run_id}")

    # show logged data
    logged = fetch_logged_data(run.info.run_id)
    for key, data in logged.items():
        print(f"\n---------- logged {key} ----------")
        pprint(data)
    assert logged["params"] and logged["metrics"], "autolog logged nothing"  # bench check


if __name__ == "__main__":
    main()
