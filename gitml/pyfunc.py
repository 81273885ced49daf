"""``gitml.pyfunc``: load any model and predict (MLflow's ``mlflow.pyfunc``)."""

from gitml.models.pyfunc import PyFuncModel, PythonModel, PythonModelContext, load_model, log_model, save_model

__all__ = ["PyFuncModel", "PythonModel", "PythonModelContext", "load_model", "log_model", "save_model"]
