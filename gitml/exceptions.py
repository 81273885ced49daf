"""``mlflow.exceptions`` for ``import gitml as mlflow``: ``MlflowException`` is ``GitmlError``.

``except mlflow.exceptions.MlflowException`` in a script written for MLflow
must catch every error gitml raises (a missing run, a param logged twice, a
model refused by the trust gate). Python's ``except`` matches by the class
hierarchy alone (``PyType_IsSubtype``: a ``__subclasscheck__`` hook is not
consulted), so ``MlflowException`` has to be ``GitmlError`` or a base of it.
It is ``GitmlError`` itself: one root class, whose constructor also takes
MLflow's ``error_code`` (the number or the name), so ``raise
MlflowException("...", error_code=INVALID_PARAMETER_VALUE)`` in user code
behaves as any gitml error does (exit code in the CLI, HTTP status in the
servers). ``e.error_code`` is the name MLflow uses (``"RESOURCE_DOES_NOT_EXIST"``).
"""

from __future__ import annotations

from gitml.errors import ERROR_CODES, HTTP_STATUS, GitmlError

MlflowException = GitmlError

ABORTED = ERROR_CODES["ABORTED"]
ALREADY_EXISTS = ERROR_CODES["ALREADY_EXISTS"]
BAD_REQUEST = ERROR_CODES["BAD_REQUEST"]
INTERNAL_ERROR = ERROR_CODES["INTERNAL_ERROR"]
INVALID_PARAMETER_VALUE = ERROR_CODES["INVALID_PARAMETER_VALUE"]
INVALID_STATE = ERROR_CODES["INVALID_STATE"]
NOT_FOUND = ERROR_CODES["NOT_FOUND"]
NOT_IMPLEMENTED = ERROR_CODES["NOT_IMPLEMENTED"]
PERMISSION_DENIED = ERROR_CODES["PERMISSION_DENIED"]
RESOURCE_ALREADY_EXISTS = ERROR_CODES["RESOURCE_ALREADY_EXISTS"]
RESOURCE_DOES_NOT_EXIST = ERROR_CODES["RESOURCE_DOES_NOT_EXIST"]
ERROR_CODE_TO_HTTP_STATUS = {ERROR_CODES[name]: status for name, status in HTTP_STATUS.items()}

__all__ = ["MlflowException", "ERROR_CODE_TO_HTTP_STATUS", "ABORTED", "ALREADY_EXISTS", "BAD_REQUEST",
           "INTERNAL_ERROR", "INVALID_PARAMETER_VALUE", "INVALID_STATE", "NOT_FOUND", "NOT_IMPLEMENTED",
           "PERMISSION_DENIED", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"]
