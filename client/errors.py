"""The SDK's exceptions; the tree is drawn in ``client/__init__.py``.

A refusal by the server (an ``error`` frame on the socket or a 4xx from REST) is a
:class:`RequestError` carrying the server's ``code`` and ``message``; the subclass is chosen by
that code so callers can ``except LockedError`` rather than compare strings.
"""

from __future__ import annotations

from typing import Any

from server.protocol import UserRef


class LabelhubError(Exception):
    """Base class of every exception the SDK raises."""


class TransportError(LabelhubError):
    """The server could not be reached or the connection failed."""


class ConnectionClosed(TransportError):
    """The socket closed and this request will not be retried (or the client was closed)."""

    def __init__(self, message: str = "connection closed", code: int | None = None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.code, self.reason = code, reason


class RequestTimeout(TransportError):
    """No answer within the client's timeout."""


class RequestError(LabelhubError):
    """The server refused a request: ``code`` and ``message`` are the server's."""

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 details: Any = None, holder: UserRef | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message
        self.status, self.details, self.holder = status, details, holder


class AuthenticationError(RequestError):
    """Bad credentials or an expired token (HTTP 401, close code 4401)."""


class ForbiddenError(RequestError):
    """The account lacks a privilege or is no longer active (HTTP 403, ``forbidden``, 4403)."""


class NotFoundError(RequestError):
    """No such project or image, or not visible to this account."""


class InvalidRequestError(RequestError):
    """The request or the op was malformed or broke a geometry rule."""


class TooLargeError(InvalidRequestError):
    """The message is over the server's size limit (``too_large``): an ``op`` past 8 MiB
    (``server.protocol.MAX_OP_BYTES``), any other message past 64 KiB. Sending it again cannot
    succeed: split the batch. Raised before sending when the SDK can tell (nothing was sent)."""


class ConflictError(RequestError):
    """The image moved on meanwhile (``conflict``, HTTP 409): e.g. a reviewer accepted it while
    a manager reopened it; one of the two won. Read the image again before deciding anew."""


class LockedError(RequestError):
    """Another user holds the image's lock; ``holder`` says who."""


class LockLostError(RequestError):
    """The op's lock is gone: released, expired, taken over, or another user got it meanwhile."""


class NothingToUndoError(RequestError):
    """Undo or redo with an empty history."""


class NotReadyError(RequestError):
    """Image features are not computed yet (``not_ready``, HTTP 409); ``job`` is the embed job
    to wait for, as ``RestClient.job`` returns it."""

    job: dict[str, Any] | None = None


class RateLimitedError(RequestError):
    """Too many messages (``rate_limited``), or the server's pool for heavy edits is full
    (``busy``, HTTP 503): slow down and send it again; nothing was applied."""


class UnavailableError(RequestError):
    """The server's database connection broke under the request. Retry: an op with the same
    ``client_op_id`` is applied at most once (one that committed just before the break gets its
    original ack)."""


_BY_CODE: dict[str, type[RequestError]] = {
    "unauthorized": AuthenticationError,
    "bad_credentials": AuthenticationError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "locked": LockedError,
    "no_lock": LockLostError,
    "stale_token": LockLostError,
    "lock_expired": LockLostError,
    "lock_lost": LockLostError,
    "lock_required": LockLostError,
    "conflict": ConflictError,
    "not_ready": NotReadyError,
    "nothing_to_undo": NothingToUndoError,
    "nothing_to_redo": NothingToUndoError,
    "rate_limited": RateLimitedError,
    "busy": RateLimitedError,
    "unavailable": UnavailableError,
    "invalid": InvalidRequestError,
    "invalid_op": InvalidRequestError,
    "too_costly": InvalidRequestError,
    "bad_json": InvalidRequestError,
    "too_large": TooLargeError,
    "not_enough_examples": InvalidRequestError,
    "binary_frame": InvalidRequestError,
}
_BY_STATUS: dict[int, type[RequestError]] = {
    401: AuthenticationError, 403: ForbiddenError, 404: NotFoundError, 422: InvalidRequestError,
    429: RateLimitedError, 503: UnavailableError,
}


def error_for(code: str, message: str, *, status: int | None = None, details: Any = None,
              holder: UserRef | None = None) -> RequestError:
    """The most specific :class:`RequestError` for a server error code (or HTTP status)."""
    cls = _BY_CODE.get(code) or (_BY_STATUS.get(status) if status is not None else None)
    return (cls or RequestError)(code, message, status=status, details=details, holder=holder)
