"""Errors gitml raises. One base class; subclasses are named for what the user can do.

Every error carries an ``exit_code`` for the CLI and an ``http_status`` for the
viewer and the scoring server, so the shells map errors without guessing.
"""

from __future__ import annotations

import json
from typing import Any

#: MLflow's error codes: name -> the number MLflow's protobuf gives it (``mlflow.exceptions.<NAME>``).
ERROR_CODES = {
    "INTERNAL_ERROR": 1, "TEMPORARILY_UNAVAILABLE": 2, "BAD_REQUEST": 4, "DEADLINE_EXCEEDED": 7,
    "CANCELLED": 8, "RESOURCE_EXHAUSTED": 9, "ABORTED": 10, "NOT_FOUND": 11, "ALREADY_EXISTS": 12,
    "UNAUTHENTICATED": 13, "INVALID_PARAMETER_VALUE": 1000, "ENDPOINT_NOT_FOUND": 1001,
    "INVALID_STATE": 1003, "PERMISSION_DENIED": 1004, "CUSTOMER_UNAUTHORIZED": 1006,
    "REQUEST_LIMIT_EXCEEDED": 1007, "RESOURCE_CONFLICT": 1008, "NOT_IMPLEMENTED": 1010, "DATA_LOSS": 1011,
    "RESOURCE_ALREADY_EXISTS": 3001, "RESOURCE_DOES_NOT_EXIST": 3002,
}
#: MLflow's HTTP status per error code (``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS``); 500 otherwise.
HTTP_STATUS = {
    "NOT_IMPLEMENTED": 501, "TEMPORARILY_UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
    "REQUEST_LIMIT_EXCEEDED": 429, "CANCELLED": 499, "RESOURCE_EXHAUSTED": 429, "ABORTED": 409,
    "RESOURCE_CONFLICT": 409, "ALREADY_EXISTS": 409, "NOT_FOUND": 404, "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_DOES_NOT_EXIST": 404, "PERMISSION_DENIED": 403, "CUSTOMER_UNAUTHORIZED": 401,
    "UNAUTHENTICATED": 401, "BAD_REQUEST": 400, "RESOURCE_ALREADY_EXISTS": 400, "INVALID_PARAMETER_VALUE": 400,
}
_CODE_NAMES = {number: name for name, number in ERROR_CODES.items()}


class GitmlError(Exception):
    """Base of every error gitml raises on purpose; also ``gitml.exceptions.MlflowException``.

    The constructor takes MLflow's arguments too, so code written for
    MLflow can raise it: ``MlflowException(message, error_code=...)`` with
    the code as MLflow's number or its name; ``get_http_status_code()`` and
    ``serialize_as_json()`` answer as MLflow's do.
    """

    exit_code: int = 1
    http_status: int = 500
    error_code: str = "INTERNAL_ERROR"

    def __init__(self, message: Any, error_code: int | str | None = None, **kwargs: Any) -> None:
        message = str(message)
        super().__init__(message)
        self.message: str = message
        if error_code is not None:
            name = _CODE_NAMES.get(error_code, error_code) if isinstance(error_code, int) else str(error_code)
            self.error_code = name if name in ERROR_CODES else "INTERNAL_ERROR"
            self.http_status = HTTP_STATUS.get(self.error_code, 500)
        self.json_kwargs = kwargs

    def __str__(self) -> str:
        return self.message

    def get_http_status_code(self) -> int:
        return self.http_status

    def serialize_as_json(self) -> str:
        return json.dumps({"error_code": self.error_code, "message": self.message, **self.json_kwargs})

    @classmethod
    def invalid_parameter_value(cls, message: Any, **kwargs: Any) -> GitmlError:
        return cls(message, error_code="INVALID_PARAMETER_VALUE", **kwargs)


class NotARepository(GitmlError):
    """The path is not inside a git repository."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class InvalidName(GitmlError):
    """A key, tag, experiment, model or stage name breaks the naming rules."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class InvalidValue(GitmlError):
    """A param, metric or tag value is of the wrong type or too large."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class InvalidFilter(GitmlError):
    """A search filter or order_by string does not parse."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class ParamAlreadyLogged(InvalidValue):
    """A param was logged again with a different value (params are write-once)."""


class NotFound(GitmlError):
    """What was asked for does not exist (404 in the servers)."""

    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class RunNotFound(NotFound):
    """No run with that id (or prefix) exists in the repository."""


class ExperimentNotFound(GitmlError):
    """No experiment with that id or name exists."""

    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class ModelNotFound(GitmlError):
    """No model (MLmodel file) at the given location."""

    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class AmbiguousRunId(GitmlError):
    """A run id prefix matches more than one run."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class NoActiveRun(GitmlError):
    """A logging call was made with no active run and none could be started."""

    http_status = 400
    error_code = "BAD_REQUEST"


class RunNotActive(GitmlError):
    """The run is finished or deleted and cannot take the requested change."""

    http_status = 400
    error_code = "INVALID_STATE"


class ConcurrentUpdate(GitmlError):
    """A ref kept moving under us and the retries ran out."""

    http_status = 409
    error_code = "ABORTED"


class CorruptRun(GitmlError):
    """A run (or experiment) in git does not have the shape gitml writes.

    Such data was written by hand or by another tool, or arrived damaged by
    ``git fetch``; readers of many runs skip it with a warning naming it.
    """

    http_status = 422
    error_code = "INVALID_STATE"
