# Adapted from MLflow's examples/lightgbm/lightgbm_sklearn/train.py and the MLflow
# LightGBM docs page (Apache-2.0). Autologging is replaced by explicit log calls.
import lightgbm as lgb
from sklearn.datasets import load_iris
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

import mlflow
import mlflow.lightgbm
from mlflow.models import infer_signature

X, y = load_iris(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y)

with mlflow.start_run():
    classifier = lgb.LGBMClassifier(n_estimators=20, reg_lambda=1.0, verbose=-1)
    classifier.fit(X_train, y_train, eval_set=[(X_test, y_test)])
    y_pred = classifier.predict(X_test)
    mlflow.log_metric("f1", f1_score(y_test, y_pred, average="micro"))
    mlflow.lightgbm.log_model(classifier, name="model", signature=infer_signature(X_test, y_pred))

run_id = mlflow.last_active_run().info.run_id
print(f"Logged data and model in run {run_id}")
model = mlflow.lightgbm.load_model(f"runs:/{run_id}/model")
print(model.predict(X_test[:3]))
print(mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(X_test[:3]))
