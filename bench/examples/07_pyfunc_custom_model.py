# From the MLflow docs, "Custom Python Models" (mlflow.pyfunc: "Creating custom
# Pyfunc models", the AddN example, and a model with load_context),
# https://mlflow.org/docs/latest/ml/traditional-ml/creating-custom-pyfunc/ (Apache-2.0).
import pandas as pd

import mlflow.pyfunc


# Define the model class
class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input.apply(lambda column: column + self.n)


# Construct and save the model
model_path = "add_n_model"
add5_model = AddN(n=5)
mlflow.pyfunc.save_model(path=model_path, python_model=add5_model)

# Load the model in `python_function` format
loaded_model = mlflow.pyfunc.load_model(model_path)

# Evaluate the model
model_input = pd.DataFrame([range(10)])
model_output = loaded_model.predict(model_input)
assert model_output.equals(pd.DataFrame([range(5, 15)]))


class Multiplier(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.factor = context.model_config["factor"]

    def predict(self, context, model_input, params=None):
        return model_input * self.factor


with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="multiplier", python_model=Multiplier(), model_config={"factor": 3},
                                   input_example=pd.DataFrame({"x": [1.0, 2.0]}))
loaded = mlflow.pyfunc.load_model(info.model_uri)
print(loaded.predict(pd.DataFrame({"x": [1.0, 2.0]})))
print(type(loaded.unwrap_python_model()).__name__)
