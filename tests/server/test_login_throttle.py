"""Login throttling per account and per address, held in the database (F6); argon2 off the event
loop; unknown accounts answered like known ones. By attempt counts on a hand-moved clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import argon2
import httpx
import pytest
from starlette.applications import Starlette

from server import auth
from server.app import create_app
from server.settings import Settings
from server.throttle import ACCOUNT_FREE, ADDRESS_FREE
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app: Starlette) -> Clock:
    app.state.clock = clock = Clock()
    return clock


def client_from(app: Starlette, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def attempt(client: httpx.AsyncClient, password: str, email: str = ADMIN_EMAIL) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_forty_wrong_passwords_then_the_right_one_is_refused(
        anon: httpx.AsyncClient, clock: Clock) -> None:
    codes = [(await attempt(anon, f"wrong-{i}")).status_code for i in range(40)]
    # The first ACCOUNT_FREE + 1 are checked (the last of them starts a 1 s wait); the rest wait.
    assert codes == [401] * (ACCOUNT_FREE + 1) + [429] * (40 - ACCOUNT_FREE - 1)
    resp = await attempt(anon, ADMIN_PASSWORD)
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "rate_limited"
    assert resp.headers["retry-after"] == "1"
    clock.now += timedelta(seconds=1)
    assert (await attempt(anon, ADMIN_PASSWORD)).status_code == 200
    # A success starts the account again.
    codes = [(await attempt(anon, f"wrong-{i}")).status_code for i in range(ACCOUNT_FREE)]
    assert codes == [401] * ACCOUNT_FREE


async def test_the_wait_doubles(anon: httpx.AsyncClient, clock: Clock) -> None:
    for i in range(ACCOUNT_FREE + 1):
        await attempt(anon, f"wrong-{i}")
    waits = []
    for _ in range(4):
        resp = await attempt(anon, "wrong")
        assert resp.status_code == 429
        wait = int(resp.headers["retry-after"])
        waits.append(wait)
        clock.now += timedelta(seconds=wait)
        assert (await attempt(anon, "wrong")).status_code == 401
    assert waits == [1, 2, 4, 8]


async def test_unknown_accounts_are_answered_and_throttled_like_known_ones(
        anon: httpx.AsyncClient, clock: Clock, settings: Settings) -> None:
    known = await attempt(anon, "wrong")
    unknown = await attempt(anon, "wrong", email="nobody@example.com")
    assert unknown.status_code == known.status_code == 401
    assert unknown.json() == known.json()
    # ... after the same argon2 work: a dummy hash of the configured cost is checked.
    params = argon2.extract_parameters(auth.dummy_hash())
    assert (params.time_cost, params.memory_cost) == (settings.password_time_cost,
                                                      settings.password_memory_kib)
    codes = [(await attempt(anon, "x", email="nobody@example.com")).status_code for _ in range(10)]
    assert codes == [401] * ACCOUNT_FREE + [429] * (10 - ACCOUNT_FREE)


async def test_one_address_guessing_many_accounts_is_slowed(app: Starlette, clock: Clock) -> None:
    async with client_from(app, "10.0.0.1") as guesser, client_from(app, "10.0.0.2") as other:
        codes = [(await attempt(guesser, "x", email=f"u{i}@example.com")).status_code
                 for i in range(ADDRESS_FREE + 3)]
        assert codes == [401] * (ADDRESS_FREE + 1) + [429] * 2
        assert (await attempt(guesser, ADMIN_PASSWORD)).status_code == 429
        assert (await attempt(other, ADMIN_PASSWORD)).status_code == 200


async def test_successful_logins_do_not_add_up_for_an_address(app: Starlette, clock: Clock) -> None:
    async with client_from(app, "10.0.0.3") as office:
        for _ in range(ADDRESS_FREE + 5):
            assert (await attempt(office, ADMIN_PASSWORD)).status_code == 200


async def test_concurrent_guesses_are_counted_one_by_one(anon: httpx.AsyncClient, clock: Clock) -> None:
    answers = await asyncio.gather(*(attempt(anon, f"wrong-{i}") for i in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * (ACCOUNT_FREE + 1) + [429] * (20 - ACCOUNT_FREE - 1)


@pytest.fixture
async def second_process(settings: Settings) -> AsyncIterator[Starlette]:
    """Another server on the same database (on PostgreSQL: as another process would be)."""
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        yield other


async def test_the_counts_hold_across_server_processes(
        anon: httpx.AsyncClient, clock: Clock, second_process: Starlette) -> None:
    second_process.state.clock = clock
    for i in range(ACCOUNT_FREE + 1):
        assert (await attempt(anon, f"wrong-{i}")).status_code == 401
    async with client_from(second_process, "10.9.9.9") as elsewhere:
        assert (await attempt(elsewhere, ADMIN_PASSWORD)).status_code == 429


async def test_a_flood_beyond_the_password_queue_gets_429(anon: httpx.AsyncClient) -> None:
    taken = auth.PASSWORD_THREADS + auth.PASSWORD_QUEUE
    auth._password_jobs += taken  # every thread busy and the queue full
    try:
        resp = await attempt(anon, ADMIN_PASSWORD)
    finally:
        auth._password_jobs -= taken
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert (await attempt(anon, ADMIN_PASSWORD)).status_code == 200


async def test_argon2_runs_on_its_own_threads() -> None:
    thread = await auth._off_loop(threading.current_thread)
    assert thread is not threading.current_thread() and thread.name.startswith("argon2")
    assert auth.verify_password(await auth.hash_password_off_loop("pw-123456"), "pw-123456")
    assert not await auth.verify_password_off_loop(None, "pw-123456")
