"""``gitml.pyfunc``: load any model and predict (MLflow's ``mlflow.pyfunc``)."""

from gitml.models.pyfunc import (
    PyFuncModel,
    PythonModel,
    PythonModelContext,
    get_model_dependencies,
    load_model,
    load_pyfunc,
    log_model,
    save_model,
)

__all__ = ["PyFuncModel", "PythonModel", "PythonModelContext", "get_model_dependencies", "load_model",
           "load_pyfunc", "log_model", "save_model"]
