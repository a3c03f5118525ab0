"""Logins and the event loop: ``python -m benchmarks.logins`` (also run by ``make bench``).

A real uvicorn server (SQLite, argon2 at its production cost: time 3, 64 MiB) in a thread;
``/healthz`` latency (p50 / p99 of 100 requests, 10 ms apart, from another thread) while one
client sends wrong passwords back to back: through the real login route (argon2 on the password
threads; the guesser rotates X-Forwarded-For addresses and unknown accounts so the throttle does
not stop it), against a baseline in the same run: a route doing what the login route did before,
``verify_password`` on the event loop. Also the time of a wrong password for an existing and for
an unknown account (median of 5).
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.app import create_app
from server.auth import verify_password
from server.cli import _alembic_upgrade
from server.db import transaction
from server.models import User
from server.settings import Settings

EMAIL, PASSWORD = "admin@example.com", "bench-password-1"
PINGS = 100


async def old_login(request: Request) -> Response:
    """The login route before: the user read and the password verified on the event loop."""
    body = await request.json()
    async with transaction(request.app.state.sessions) as session:
        user = (await session.execute(select(User).where(User.email == body["email"]))).scalar_one_or_none()
        ok = user is not None and verify_password(user.password_hash, body["password"])
    return JSONResponse({"ok": ok}, status_code=200 if ok else 401)


def _healthz(url: str) -> tuple[float, float]:
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(PINGS):
            t0 = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def _under_guessing(url: str, path: str, email: str | None) -> tuple[float, float, int]:
    stop = threading.Event()
    count = [0]

    def guess() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            n = 0
            while not stop.is_set():
                address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
                resp = client.post(path, json={"email": email or f"u{n}@example.com", "password": "wrong"},
                                   headers={"X-Forwarded-For": address})
                assert resp.status_code == 401, resp.text
                n += 1
            count[0] = n

    thread = threading.Thread(target=guess)
    thread.start()
    time.sleep(0.5)
    p50, p99 = _healthz(url)
    stop.set()
    thread.join()
    return p50, p99, count[0]


def _wrong(url: str, email: str) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(5):
            t0 = time.perf_counter()
            resp = client.post("/api/v1/auth/login", json={"email": email, "password": "wrong"},
                               headers={"X-Forwarded-For": f"192.168.0.{i}"})
            times.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 401
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(database_url=f"sqlite+aiosqlite:///{data / 'bench.db'}", data_dir=data,
                            secret_key="bench", admin_email=EMAIL, admin_password=PASSWORD)
        _alembic_upgrade(settings, "head")
        app = create_app(settings)
        app.router.routes.insert(0, Route("/bench/old-login", old_login, methods=["POST"]))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=True,
                                               forwarded_allow_ips="127.0.0.1"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            idle = _healthz(url)
            old = _under_guessing(url, "/bench/old-login", EMAIL)
            new = _under_guessing(url, "/api/v1/auth/login", None)
            known, unknown = _wrong(url, EMAIL), _wrong(url, "nobody@example.com")
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
    print("| case | Labelhub | baseline (same run) |")
    print("|---|---:|---:|")
    print(f"| /healthz p50 / p99, idle | {idle[0]:.1f} / {idle[1]:.1f} ms | |")
    print(f"| /healthz p50 / p99 while one client sends wrong passwords back to back | {new[0]:.1f} / "
          f"{new[1]:.1f} ms ({new[2]} guesses, argon2 on the password threads) | {old[0]:.1f} / "
          f"{old[1]:.1f} ms ({old[2]} guesses, argon2 on the event loop) |")
    print(f"| wrong password: existing / unknown account (median of 5) | {known:.0f} / {unknown:.0f} ms | |")


if __name__ == "__main__":
    main()
