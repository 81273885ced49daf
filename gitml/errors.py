"""Errors gitml raises. One base class; subclasses are named for what the user can do.

Every error carries an ``exit_code`` for the CLI and an ``http_status`` for the
viewer and the scoring server, so the shells map errors without guessing.
"""

from __future__ import annotations


class GitmlError(Exception):
    """Base of every error gitml raises on purpose."""

    exit_code: int = 1
    http_status: int = 500
    error_code: str = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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
