# Adapted from MLflow's examples/xgboost/xgboost_native/train.py and the MLflow
# XGBoost docs page (https://mlflow.org/docs/latest/ml/traditional-ml/xgboost/),
# Apache-2.0. Autologging is replaced by the explicit log calls the docs page
# shows (autolog is covered by 09_sklearn_autolog.py).
import xgboost as xgb
from sklearn import datasets
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

import mlflow
import mlflow.xgboost
from mlflow.models import infer_signature

iris = datasets.load_iris()
X_train, X_test, y_train, y_test = train_test_split(iris.data, iris.target, test_size=0.2, random_state=42)
dtrain = xgb.DMatrix(X_train, label=y_train)
dtest = xgb.DMatrix(X_test, label=y_test)

with mlflow.start_run():
    params = {"objective": "multi:softprob", "num_class": 3, "learning_rate": 0.3, "eval_metric": "mlogloss",
              "colsample_bytree": 1.0, "subsample": 1.0, "seed": 42}
    mlflow.log_params(params)
    model = xgb.train(params, dtrain, num_boost_round=10, evals=[(dtrain, "train")])
    y_proba = model.predict(dtest)
    y_pred = y_proba.argmax(axis=1)
    mlflow.log_metrics({"log_loss": log_loss(y_test, y_proba), "accuracy": accuracy_score(y_test, y_pred)})
    signature = infer_signature(X_test, y_proba)
    info = mlflow.xgboost.log_model(model, name="model", signature=signature)

loaded = mlflow.xgboost.load_model(info.model_uri)
pyfunc_model = mlflow.pyfunc.load_model(info.model_uri)
print(pyfunc_model.predict(X_test[:3]))
