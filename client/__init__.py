"""The Labelhub Python SDK: a live hub session (:class:`LabelhubClient`) and REST helpers.

Usage (docs/sdk.md has more)::

    async with LabelhubClient("http://127.0.0.1:8000", project=3,
                              email="ana@example.com", password="...") as hub:
        opened = await hub.next_image()
        await hub.op(opened.image, {"kind": "create", "object": {...}})
        async for event in hub.events():
            ...

Exceptions (``client.errors``)::

    LabelhubError
    ├── TransportError              the server could not be reached / the connection failed
    │   ├── ConnectionClosed        the socket closed and the request will not be retried
    │   └── RequestTimeout          no answer within the client's timeout
    └── RequestError(code, message) the server refused: an ``error`` frame or an HTTP 4xx
        ├── AuthenticationError     401, close code 4401, bad credentials
        ├── ForbiddenError          403, ``forbidden``, close code 4403
        ├── NotFoundError           ``not_found``
        ├── InvalidRequestError     ``invalid``, ``invalid_op``, ``bad_json``
        │   └── TooLargeError       ``too_large``: over the size limit; split it, do not resend
        ├── ConflictError           ``conflict``: the image's workflow state moved on meanwhile
        ├── LockedError             ``locked`` (``.holder`` says who)
        ├── LockLostError           ``no_lock``, ``stale_token``, ``lock_expired``, ``lock_lost``,
        │                           ``lock_required`` (marking done without the lock)
        ├── NothingToUndoError      ``nothing_to_undo``, ``nothing_to_redo``
        ├── NotReadyError           ``not_ready``: image features still computing (``.job``)
        ├── RateLimitedError        ``rate_limited`` (ops are paced and resent for you), ``busy``
        └── UnavailableError        ``unavailable``, 503: the server lost its database connection; retry
"""

from __future__ import annotations

from client.errors import (
    AuthenticationError,
    ConflictError,
    ConnectionClosed,
    ForbiddenError,
    InvalidRequestError,
    LabelhubError,
    LockedError,
    LockLostError,
    NotFoundError,
    NothingToUndoError,
    NotReadyError,
    RateLimitedError,
    RequestError,
    RequestTimeout,
    TooLargeError,
    TransportError,
    UnavailableError,
)
from client.hub import Applied, Event, LabelhubClient, Opened
from client.rest import RestClient

__all__ = [
    "Applied",
    "AuthenticationError",
    "ConflictError",
    "ConnectionClosed",
    "Event",
    "ForbiddenError",
    "InvalidRequestError",
    "LabelhubClient",
    "LabelhubError",
    "LockLostError",
    "LockedError",
    "NotFoundError",
    "NotReadyError",
    "NothingToUndoError",
    "Opened",
    "RateLimitedError",
    "RequestError",
    "RequestTimeout",
    "RestClient",
    "TooLargeError",
    "TransportError",
    "UnavailableError",
]
