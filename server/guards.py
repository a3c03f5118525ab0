"""Request guards for every HTTP request: cross-site writes refused, security headers added.

A page on another origin (another port or subdomain of the same site counts: SameSite cookies
do not stop it) can make the browser send a form post with the login cookie. Such a post carries
an ``Origin`` header and can only be ``text/plain``, ``application/x-www-form-urlencoded`` or
``multipart/form-data`` without asking the server first (CORS preflight, which this server never
grants). So a state-changing ``/api/`` call is refused when

- its ``Origin`` is present and is neither the server's own nor in ``LABELHUB_ALLOWED_ORIGINS``
  (403 ``bad_origin``), or
- its body is declared ``text/plain`` or form-encoded, or multipart outside the upload routes
  (415 ``unsupported_media_type``); JSON routes also want ``application/json``
  (``server._web.read_body``).

Clients that are not browsers send no ``Origin`` and are unaffected. A plain ASGI middleware
(not starlette's ``BaseHTTPMiddleware``, which would buffer streaming responses); WebSockets
pass straight through (the hub checks their origin at the handshake).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import error_response

__all__ = ["SECURITY_HEADERS", "Guard", "origin_allowed"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded"})
# The only routes that take multipart bodies: image uploads and label imports (``curl -F``).
MULTIPART_PATHS = re.compile(r"^/api/v1/projects/[^/]+/(images(/zip)?|import)/?$")

# The browser app is same-origin ES modules, a stylesheet, images from the API and blob:/data:
# URLs, and one WebSocket back to this server ('self' covers ws:/wss: to the same host in
# CSP 3). Inline styles set through the CSSOM (element.style) are not affected by style-src.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"same-origin"),
]


def origin_allowed(origin: str | None, host: str, allowed: Iterable[str]) -> bool:
    """No ``Origin`` (not a browser), the server's own, or one of ``LABELHUB_ALLOWED_ORIGINS``."""
    if origin is None:
        return True
    return origin in (f"http://{host}", f"https://{host}") or origin in allowed


class Guard:
    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if scope["method"] in UNSAFE_METHODS and scope["path"].startswith("/api/"):
            refusal = self._refusal(scope)
            if refusal is not None:
                status, code, text = refusal
                await error_response(status, code, text)(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not origin_allowed(origin, headers.get("host", ""), self.allowed_origins):
            return 403, "bad_origin", (f"requests from {origin} may not change anything here; "
                                       "add it to LABELHUB_ALLOWED_ORIGINS to allow it")
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind in FORM_TYPES or (kind == "multipart/form-data"
                                  and not MULTIPART_PATHS.match(scope["path"])):
            return 415, "unsupported_media_type", (f"{kind} bodies are not accepted here; send "
                                                   "JSON with Content-Type: application/json")
        return None
