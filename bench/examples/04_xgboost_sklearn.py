# Adapted from MLflow's examples/xgboost/xgboost_sklearn/train.py and the MLflow
# XGBoost docs page (Apache-2.0). Autologging is replaced by explicit log calls;
# utils.fetch_logged_data is inlined.
from pprint import pprint

import xgboost as xgb
from sklearn.datasets import load_diabetes
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

import mlflow
import mlflow.xgboost
from mlflow.models import infer_signature


def fetch_logged_data(run_id):
    client = mlflow.MlflowClient()
    data = client.get_run(run_id).data
    tags = {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}
    artifacts = [f.path for f in client.list_artifacts(run_id, "model")]
    return {"params": data.params, "metrics": data.metrics, "tags": tags, "artifacts": artifacts}


X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y)

with mlflow.start_run() as run:
    regressor = xgb.XGBRegressor(n_estimators=20, reg_lambda=1, gamma=0, max_depth=3)
    regressor.fit(X_train, y_train, eval_set=[(X_test, y_test)], verbose=False)
    y_pred = regressor.predict(X_test)
    mse = mean_squared_error(y_test, y_pred)
    mlflow.log_params(regressor.get_params())
    mlflow.log_metric("mse", mse)
    mlflow.xgboost.log_model(regressor, name="model", signature=infer_signature(X_test, y_pred),
                             input_example=X_test[:5])
    run_id = run.info.run_id
    print(f"Logged data and model in run {run_id}")

for key, data in fetch_logged_data(run_id).items():
    print(f"\n---------- logged {key} ----------")
    pprint(data)
model = mlflow.xgboost.load_model(f"runs:/{run_id}/model")
print(model.predict(X_test[:3]))
