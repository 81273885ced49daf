# Adapted from MLflow's examples/lightgbm/lightgbm_native/train.py and the MLflow
# LightGBM docs page (Apache-2.0). Autologging is replaced by explicit log calls.
import lightgbm as lgb
from sklearn import datasets
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

import mlflow
import mlflow.lightgbm

iris = datasets.load_iris()
X_train, X_test, y_train, y_test = train_test_split(iris.data, iris.target, test_size=0.2, random_state=42)
train_set = lgb.Dataset(X_train, label=y_train)

with mlflow.start_run():
    params = {"objective": "multiclass", "num_class": 3, "learning_rate": 0.1, "metric": "multi_logloss",
              "colsample_bytree": 1.0, "subsample": 1.0, "seed": 42, "verbose": -1}
    mlflow.log_params(params)
    model = lgb.train(params, train_set, num_boost_round=10, valid_sets=[train_set], valid_names=["train"])
    y_proba = model.predict(X_test)
    y_pred = y_proba.argmax(axis=1)
    mlflow.log_metrics({"log_loss": log_loss(y_test, y_proba), "accuracy": accuracy_score(y_test, y_pred)})
    info = mlflow.lightgbm.log_model(model, name="model", input_example=X_test[:5])

booster = mlflow.lightgbm.load_model(info.model_uri)
print(mlflow.pyfunc.load_model(info.model_uri).predict(X_test[:3]))
