"""Request body limits, enforced while the body is read.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body
(or one that lies about its length) is counted as it arrives and refused as soon as it passes
the limit, so no request holds more than its limit in memory. Every answer is
``413 {"error": {"code": "too_large", "details": {"limit_bytes": N}}}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from server.errors import ApiError

__all__ = ["LOGIN_BODY_LIMIT", "json_limit", "limit_body", "read_limited", "too_large",
           "upload_limit"]

# Login is anonymous by nature, so its body must be tiny: an email and a password of at most
# 1000 characters (JSON-escaped non-ASCII characters take up to 6 bytes each) fit.
LOGIN_BODY_LIMIT = 8 * 1024


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is larger than {limit} bytes",
                    {"limit_bytes": limit})


def json_limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_json_bytes
    return limit


def upload_limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_upload_bytes
    return limit


def _check_declared(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number") from None
    if size > limit:
        raise too_large(limit)


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to pass ``limit`` bytes."""
    _check_declared(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise too_large(limit)
        body += chunk
    return bytes(body)


def limit_body(request: Request, limit: int) -> Request:
    """The same request, refusing (413) a body past ``limit``: declared up front or counted as
    the form parser (or anything else) reads it."""
    _check_declared(request, limit)
    receive = request.receive
    received = 0

    async def counting() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return Request(request.scope, counting)
