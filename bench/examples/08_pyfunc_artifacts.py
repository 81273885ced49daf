# From the MLflow docs, "Custom Python Models": wrapping an XGBoost model with
# artifacts={...} (https://mlflow.org/docs/latest/ml/traditional-ml/creating-custom-pyfunc/),
# Apache-2.0, plus an artifact given as a runs:/ URI (mlflow.pyfunc.log_model docs:
# "artifacts ... can be any URI supported by MLflow").
import json

import xgboost as xgb
from sklearn import datasets
from sklearn.model_selection import train_test_split

import mlflow
import mlflow.pyfunc

iris = datasets.load_iris()
x = iris.data[:, 2:]
y = iris.target
x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=42)
dtrain = xgb.DMatrix(x_train, label=y_train)

xgb_model = xgb.train(params={"max_depth": 10}, dtrain=dtrain, num_boost_round=10)
xgb_model_path = "xgb_model.json"
xgb_model.save_model(xgb_model_path)

# Create an `artifacts` dictionary that assigns a unique name to the saved XGBoost model file.
# This dictionary will be passed to `mlflow.pyfunc.save_model`, which will copy the model file
# into the new MLflow Model's directory.
artifacts = {"xgb_model": xgb_model_path}


class XGBWrapper(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import xgboost as xgb

        self.xgb_model = xgb.Booster()
        self.xgb_model.load_model(context.artifacts["xgb_model"])

    def predict(self, context, model_input, params=None):
        input_matrix = xgb.DMatrix(model_input)
        return self.xgb_model.predict(input_matrix)


conda_env = {
    "channels": ["defaults"],
    "dependencies": [f"xgboost=={xgb.__version__}"],
    "name": "xgb_env",
}
mlflow_pyfunc_model_path = "xgb_mlflow_pyfunc"
mlflow.pyfunc.save_model(path=mlflow_pyfunc_model_path, python_model=XGBWrapper(), artifacts=artifacts,
                         conda_env=conda_env)
loaded_model = mlflow.pyfunc.load_model(mlflow_pyfunc_model_path)
print(loaded_model.predict(x_test[:3]))


# The same with an artifact that a run logged, named by its runs:/ URI.
class Labeler(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["labels"]) as f:
            self.labels = json.load(f)

    def predict(self, context, model_input, params=None):
        return [self.labels[str(int(v))] for v in model_input["cls"]]


with mlflow.start_run() as run:
    mlflow.log_dict({"0": "setosa", "1": "versicolor", "2": "virginica"}, "labels.json")
    info = mlflow.pyfunc.log_model(name="labeler", python_model=Labeler(),
                                   artifacts={"labels": f"runs:/{run.info.run_id}/labels.json"})
import pandas as pd  # noqa: E402

print(mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame({"cls": [0, 2]})))
