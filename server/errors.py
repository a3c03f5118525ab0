"""One JSON shape for every error: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.db import connection_lost

log = logging.getLogger("labelhub")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


class ApiError(Exception):
    """Raised anywhere in a request; rendered as a 4xx with the error shape."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers  # e.g. Retry-After on a 429
        self.extra = extra  # more keys of the error object, e.g. the job a "not_ready" waits for


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "you do not have the privilege for this") -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(message: str, details: Any = None) -> ApiError:
    return ApiError(422, "invalid", message, details)


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {**(extra or {}), "code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers, exc.extra)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    details = validation_details(exc)
    first = details[0] if details else {"field": "", "message": "invalid input"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return error_response(422, "invalid", message, details)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "internal server error")


async def _database_error(request: Request, exc: Exception) -> Response:
    if not connection_lost(exc):
        return await _unexpected(request, exc)
    # The pool was invalidated with the connection; the next request gets a fresh one.
    log.warning("database connection lost: %s", exc)
    return error_response(503, "unavailable", "the database connection was lost; nothing was "
                                              "changed, please retry")


async def _pool_exhausted(_request: Request, _exc: Exception) -> Response:
    # No connection was had, so nothing was done; a moment later there may be one.
    log.warning("database pool exhausted; answered 503 busy")
    return error_response(503, "busy", "the server's database connections are all in use; "
                                       "please retry", headers={"Retry-After": "1"})


exception_handlers: dict[Any, Any] = {
    PoolTimeout: _pool_exhausted,
    ApiError: _api_error,
    HTTPException: _http_error,
    ValidationError: _validation_error,
    DBAPIError: _database_error,
    Exception: _unexpected,
}
