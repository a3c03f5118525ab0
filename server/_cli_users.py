"""``labelhub user add|list|passwd|deactivate|activate``: accounts from the command line.

Every failure is one line on stderr and exit status 2 (:class:`CliError`), never a traceback:
a bad email or name, a short password, an unknown or duplicate user, a database not migrated.
The database layer is imported by the commands that use it: ``labelhub`` starts in a fraction of
the time when it has none to reach (``--help``, a mistyped argument, another command).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from server.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from server.models import User

__all__ = ["CliError", "add_user_commands"]

T = TypeVar("T")


class CliError(Exception):
    """A one-line message for stderr; the command exits with status 2."""


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from sqlalchemy.exc import DBAPIError

    from server.auth import configure_password_hashing
    from server.db import make_engine, make_sessionmaker, transaction
    from server.errors import ApiError

    configure_password_hashing(settings.password_time_cost, settings.password_memory_kib)
    engine = make_engine(settings.resolved_database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            return await work(session)
    except ApiError as exc:
        raise CliError(exc.message) from None
    except DBAPIError as exc:
        first = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        raise CliError(f"database error ({first}); is it migrated? run `labelhub db upgrade`") from None
    finally:
        await engine.dispose()


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return asyncio.run(_in_transaction(get_settings(), work))


async def _user(session: AsyncSession, email: str) -> User:
    from sqlalchemy import select

    from server.models import User

    user = (await session.execute(
        select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()
    if user is None:
        raise CliError(f"no user with email {email.strip().lower()}")
    return user


def _password(given: str | None, confirm: bool = True) -> str:
    """``--password``, else asked for at a terminal, else one line of stdin."""
    if given is not None:
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise CliError("the passwords differ")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    from server.accounts import create_user_row
    from server.schemas import UserIn

    password = args.password or secrets.token_urlsafe(12)
    try:
        body = UserIn(email=args.email, password=password, name=args.name, is_admin=args.admin)
    except ValidationError as exc:
        raise CliError(_one_line(exc)) from None

    async def work(session: AsyncSession) -> int:
        return (await create_user_row(session, body)).id

    user_id = _run(work)
    print(f"created user {user_id}: {body.email}" + ("" if args.password else f" password: {password}"))
    return 0


def cmd_list(_args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.models import User

    async def work(session: AsyncSession) -> list[tuple[int, str, str, bool, bool]]:
        rows = await session.execute(select(User.id, User.email, User.name, User.is_admin,
                                            User.is_active).order_by(User.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]

    rows = _run(work)
    width = max([len("email")] + [len(r[1]) for r in rows])
    print(f"{'id':>5}  {'email':<{width}}  {'admin':<5}  {'active':<6}  name")
    for uid, email, name, admin, active in rows:
        print(f"{uid:>5}  {email:<{width}}  {'yes' if admin else '':<5}  "
              f"{'yes' if active else 'no':<6}  {name}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from server.accounts import reset_password
    from server.schemas import UserPatch

    try:
        password = UserPatch(password=_password(args.password)).password or ""
    except ValidationError as exc:
        raise CliError(_one_line(exc)) from None

    async def work(session: AsyncSession) -> str:
        user = await _user(session, args.email)
        await reset_password(session, user, password)
        return str(user.email)

    print(f"password set for {_run(work)}; their sessions have ended")
    return 0


def _set_active(active: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from server.accounts import set_active

        async def work(session: AsyncSession) -> str:
            user = await _user(session, args.email)
            await set_active(session, user, active)
            return str(user.email)

        email = _run(work)
        print(f"{email} is active again" if active else f"{email} is deactivated; their sessions have ended")
        return 0
    return command


def add_user_commands(sub: argparse._SubParsersAction[Any]) -> None:
    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("email")
    add.add_argument("--name", required=True, help="the name others see (required)")
    add.add_argument("--password", default=None, help="generated and printed when omitted")
    add.add_argument("--admin", action="store_true", help="make a site admin")
    add.set_defaults(func=cmd_add)

    listing = user_sub.add_parser("list", help="list every user")
    listing.set_defaults(func=cmd_list)

    passwd = user_sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("email")
    passwd.add_argument("--password", default=None,
                        help="asked for when omitted (read from stdin when it is not a terminal)")
    passwd.set_defaults(func=cmd_passwd)

    off = user_sub.add_parser("deactivate", help="stop a user logging in (ends their sessions)")
    off.add_argument("email")
    off.set_defaults(func=_set_active(False))
    on = user_sub.add_parser("activate", help="let a deactivated user log in again")
    on.add_argument("email")
    on.set_defaults(func=_set_active(True))
