# From the MLflow docs, "MLflow Model Registry" workflows
# (https://mlflow.org/docs/latest/ml/model-registry/workflow/), Apache-2.0:
# register while logging, register_model, stages (deprecated but documented),
# aliases, loading by version, stage and alias.
from sklearn.datasets import make_regression
from sklearn.ensemble import RandomForestRegressor

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature

with mlflow.start_run() as run:
    X, y = make_regression(n_features=4, n_informative=2, random_state=0, shuffle=False)
    params = {"max_depth": 2, "random_state": 42, "n_estimators": 5}
    model = RandomForestRegressor(**params)
    model.fit(X, y)
    signature = infer_signature(X, model.predict(X))
    mlflow.log_params(params)
    mlflow.sklearn.log_model(
        sk_model=model,
        name="sklearn-model",
        signature=signature,
        registered_model_name="sk-learn-random-forest-reg-model",
    )

result = mlflow.register_model(f"runs:/{run.info.run_id}/sklearn-model", "sk-learn-random-forest-reg")
print(result.name, result.version)

client = MlflowClient()
name = "sk-learn-random-forest-reg-model"
client.transition_model_version_stage(name=name, version=1, stage="Staging")
client.set_registered_model_alias(name, "champion", 1)
mv = client.get_model_version_by_alias(name, "champion")
print(mv.name, mv.version, mv.run_id)

model = mlflow.pyfunc.load_model(model_uri=f"models:/{name}/1")
print(model.predict(X[:2]))
model = mlflow.pyfunc.load_model(model_uri=f"models:/{name}/Staging")
champion = mlflow.sklearn.load_model(f"models:/{name}@champion")
print(champion.predict(X[:2]))
for mv in client.search_model_versions(f"name='{name}'"):
    print(mv.name, mv.version, mv.current_stage)
