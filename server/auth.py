"""Passwords (argon2), signed login tokens (itsdangerous), personal API tokens, and request auth."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from server.errors import ApiError
from server.models import ApiToken, User, utcnow

COOKIE_NAME = "labelhub_session"
API_TOKEN_PREFIX = "lh_"
T = TypeVar("T")
_hasher = PasswordHasher()
_dummy_hash: str | None = None

# argon2 takes a few hundred milliseconds of CPU (and releases the GIL), so it runs on a few
# threads of its own, never on the event loop. At most PASSWORD_QUEUE jobs wait for them; past
# that a login gets 429 instead of an ever longer queue.
PASSWORD_THREADS = max(1, min(4, (os.cpu_count() or 1)))
PASSWORD_QUEUE = 32
_password_pool = ThreadPoolExecutor(max_workers=PASSWORD_THREADS, thread_name_prefix="argon2")
_password_jobs = 0


def configure_password_hashing(time_cost: int, memory_kib: int) -> None:
    """Set argon2's cost for new hashes (old hashes carry their own parameters and still verify)."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                             parallelism=1 if memory_kib < 8 * 1024 else 4)
    _dummy_hash = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def dummy_hash() -> str:
    """A hash of the current cost that no password matches: checking a password for an
    unknown account against it takes as long as for a real one, so timing tells nothing."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(32))
    return _dummy_hash


class PasswordsBusy(ApiError):
    def __init__(self) -> None:
        super().__init__(429, "rate_limited", "too many logins at once; try again in a second",
                         headers={"Retry-After": "1"})


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    global _password_jobs
    if _password_jobs >= PASSWORD_THREADS + PASSWORD_QUEUE:
        raise PasswordsBusy()
    _password_jobs += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _password_pool, _on_heavy_cores, fn, *args)
    finally:
        _password_jobs -= 1


def _on_heavy_cores(fn: Callable[..., T], *args: Any) -> T:
    # argon2 is heavy work too: with the CPU split its thread leaves the event loop's core (the
    # serving process is pinned there, and a thread inherits that). One syscall per hash.
    from server.offload import pin, thread_cores

    pin(thread_cores())
    return fn(*args)


async def hash_password_off_loop(password: str) -> str:
    """``hash_password`` on the password threads (429 ``rate_limited`` when they are swamped)."""
    return await _off_loop(hash_password, password)


async def verify_password_off_loop(password_hash: str | None, password: str) -> bool:
    """``verify_password`` on the password threads; ``None`` (no such account) is checked
    against :func:`dummy_hash` and is always False."""
    if password_hash is None:
        await _off_loop(verify_password, await _off_loop(dummy_hash), password)
        return False
    return await _off_loop(verify_password, password_hash, password)


class TokenSigner:
    """Signed, expiring login tokens carrying the user id and the user's token version."""

    def __init__(self, secret_key: str, ttl_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="labelhub-login")
        self.ttl_seconds = ttl_seconds

    def issue(self, user: User) -> str:
        return self._serializer.dumps({"uid": user.id, "v": user.token_version})

    def read(self, token: str) -> tuple[int, int, float] | None:
        """``(user id, token version, expiry as a Unix time)``, or ``None`` when the token is
        forged or expired. A socket opened with it is closed at its expiry."""
        try:
            data, issued = self._serializer.loads(token, max_age=self.ttl_seconds,
                                                  return_timestamp=True)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict):
            return None
        uid, version = data.get("uid"), data.get("v")
        if not isinstance(uid, int) or not isinstance(version, int):
            return None
        return uid, version, issued.timestamp() + self.ttl_seconds


def new_api_token() -> tuple[str, str, str]:
    """Returns ``(token, prefix, sha256 hex)``; only the hash is stored."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[:10], hash_api_token(token)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    token: str
    source: str  # "cookie", "bearer" or "query"


def credentials_from(conn: HTTPConnection) -> Credentials | None:
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return Credentials(header[7:].strip(), "bearer")
    query = conn.query_params.get("token")
    if query:
        return Credentials(query, "query")
    cookie = conn.cookies.get(COOKIE_NAME)
    if cookie:
        return Credentials(cookie, "cookie")
    return None


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """Takes ``?token=`` values out of log lines. Only old SDKs still send their token in the
    socket's URL (the browser has its cookie, the SDK an ``Authorization`` header), and uvicorn
    logs each request's path with its query: a token there would sit in every access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "token=" in a for a in record.args):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def redact_tokens_in_logs() -> None:
    """Install :class:`RedactTokens` on uvicorn's loggers (once; it survives their dictConfig)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


@dataclass(frozen=True)
class Credential:
    """What a request or socket was authenticated with: a login token (the user's token version
    when it was issued) or a personal API token (its row id). An open socket keeps it, so a
    revocation can tell whether that socket's credential still holds."""

    user_id: int
    token_version: int | None = None
    api_token_id: int | None = None
    expires_at: float | None = None  # a login token's end (Unix time); API tokens do not expire


async def credential_for(session: AsyncSession, signer: TokenSigner,
                         token: str) -> tuple[User, Credential] | None:
    """The active user behind ``token`` and the credential it is, or ``None``."""
    if token.startswith(API_TOKEN_PREFIX):
        row = (
            await session.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == hash_api_token(token), ApiToken.revoked_at.is_(None))
            )
        ).first()
        if row is None:
            return None
        api_token, owner = row
        api_token.last_used_at = utcnow()
        return (owner, Credential(owner.id, api_token_id=api_token.id)) if owner.is_active else None
    parsed = signer.read(token)
    if parsed is None:
        return None
    uid, version, expires_at = parsed
    user = await session.get(User, uid)
    if user is None or not user.is_active or user.token_version != version:
        return None
    return user, Credential(uid, token_version=version, expires_at=expires_at)


async def credential_holds(session: AsyncSession, credential: Credential) -> bool:
    """Whether ``credential`` still holds, read afresh (column reads: no cached row): the
    account active, a login token's version current, an API token not revoked."""
    row = (await session.execute(select(User.is_active, User.token_version)
                                 .where(User.id == credential.user_id))).first()
    if row is None or not row.is_active:
        return False
    if credential.token_version is not None and credential.token_version != row.token_version:
        return False
    if credential.api_token_id is not None:
        live = await session.execute(select(ApiToken.id).where(
            ApiToken.id == credential.api_token_id, ApiToken.revoked_at.is_(None)))
        return live.first() is not None
    return True


async def authenticate(conn: HTTPConnection, session: AsyncSession) -> User:
    """The user behind a request or socket handshake; 401 when there is none."""
    return (await authenticate_credential(conn, session))[0]


async def authenticate_credential(conn: HTTPConnection,
                                  session: AsyncSession) -> tuple[User, Credential]:
    """:func:`authenticate`, also saying which credential was used."""
    creds = credentials_from(conn)
    if creds is None:
        raise ApiError(401, "unauthorized", "authentication required")
    found = await credential_for(session, conn.app.state.signer, creds.token)
    if found is None:
        raise ApiError(401, "unauthorized", "invalid or expired credentials")
    return found
