# From the MLflow docs, "Managing Dependencies in MLflow Models"
# (https://mlflow.org/docs/latest/ml/model/dependencies/), Apache-2.0: code_paths for a
# custom model's own module, extra_pip_requirements, metadata, and get_model_dependencies.
import pandas as pd

import mlflow

with open("my_utils.py", "w") as f:
    f.write("def double(x):\n    return x * 2\n")


class MyModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        from my_utils import double

        return double(model_input)


with mlflow.start_run():
    model_info = mlflow.pyfunc.log_model(
        name="model",
        python_model=MyModel(),
        code_paths=["my_utils.py"],
        extra_pip_requirements=["pandas>=1.0"],
        metadata={"team": "search", "owner": "alice"},
    )

print(model_info.metadata)
deps = mlflow.pyfunc.get_model_dependencies(model_info.model_uri)
with open(deps) as f:
    requirements = f.read()
print(requirements)
assert "pandas>=1.0" in requirements  # bench check
print(mlflow.pyfunc.load_model(model_info.model_uri).predict(pd.DataFrame({"x": [1, 2]})))
