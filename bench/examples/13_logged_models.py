# From the MLflow 3 docs, "LoggedModel" / "MLflow 3 migration guide"
# (https://mlflow.org/docs/latest/genai/mlflow-3/ and .../ml/model/), Apache-2.0:
# log_model returns a ModelInfo with model_id; the logged model is fetched with
# mlflow.get_logged_model and loaded by its models:/<model_id> URI.
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

import mlflow

X, y = load_iris(return_X_y=True, as_frame=True)
params = {"C": 0.5, "max_iter": 200}
model = LogisticRegression(**params).fit(X, y)

with mlflow.start_run() as run:
    mlflow.log_params(params)
    model_info = mlflow.sklearn.log_model(sk_model=model, name="iris-lr", input_example=X.iloc[:3])
    acc = accuracy_score(y, model.predict(X))
    mlflow.log_metric("accuracy", acc, model_id=model_info.model_id)

print("model_id:", model_info.model_id)
logged_model = mlflow.get_logged_model(model_info.model_id)
print(logged_model.model_id, logged_model.name, logged_model.source_run_id, logged_model.params)
assert logged_model.source_run_id == run.info.run_id  # bench check

loaded = mlflow.pyfunc.load_model(f"models:/{model_info.model_id}")
print(loaded.predict(pd.DataFrame(X.iloc[:3])))
