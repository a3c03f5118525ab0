"""The SDK's public names are a promise: changing them is a deliberate act."""

from __future__ import annotations

import client
from client import errors


def test_all_is_pinned() -> None:
    assert client.__all__ == [
        "Applied", "AuthenticationError", "ConflictError", "ConnectionClosed", "Event", "ForbiddenError",
        "InvalidRequestError", "LabelhubClient", "LabelhubError", "LockLostError", "LockedError",
        "NotFoundError", "NotReadyError", "NothingToUndoError", "Opened", "RateLimitedError", "RequestError",
        "RequestTimeout", "RestClient", "TooLargeError", "TransportError", "UnavailableError",
    ]
    assert all(hasattr(client, name) for name in client.__all__)


def test_exception_tree_matches_the_docstring() -> None:
    assert issubclass(client.ConnectionClosed, client.TransportError)
    assert issubclass(client.RequestTimeout, client.TransportError)
    assert issubclass(client.TransportError, client.LabelhubError)
    for cls in (client.AuthenticationError, client.ForbiddenError, client.NotFoundError,
                client.InvalidRequestError, client.LockedError, client.LockLostError,
                client.NothingToUndoError, client.RateLimitedError, client.UnavailableError,
                client.NotReadyError, client.TooLargeError, client.ConflictError):
        assert issubclass(cls, client.RequestError)
        assert cls.__name__ in (client.__doc__ or "")
    assert issubclass(client.RequestError, client.LabelhubError)


def test_error_codes_pick_the_subclass() -> None:
    assert isinstance(errors.error_for("stale_token", "x"), client.LockLostError)
    assert isinstance(errors.error_for("locked", "x"), client.LockedError)
    assert isinstance(errors.error_for("conflict", "x"), client.ConflictError)
    assert isinstance(errors.error_for("lock_required", "x"), client.LockLostError)
    assert isinstance(errors.error_for("unavailable", "x"), client.UnavailableError)
    assert isinstance(errors.error_for("too_large", "x"), client.TooLargeError)
    assert issubclass(client.TooLargeError, client.InvalidRequestError)
    assert isinstance(errors.error_for("whatever", "x", status=503), client.UnavailableError)
    assert isinstance(errors.error_for("whatever", "x", status=404), client.NotFoundError)
    plain = errors.error_for("whatever", "went wrong")
    assert type(plain) is client.RequestError and (plain.code, plain.message) == ("whatever", "went wrong")
