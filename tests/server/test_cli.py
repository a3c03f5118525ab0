"""The ``labelhub`` command, run as a user would run it: in a subprocess against a fresh data dir
(:func:`_run`). The many user commands of one test run in this process instead
(:func:`_run_here`: the same ``main``, arguments, environment, stdin and output), as each
subprocess spent ~1 s quiet, 2.5 s in the suite, importing the server before doing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests._db import ROOT
from tests.conftest import ADMIN_EMAIL, login


def _run(tmp_path: Path, *args: str, stdin: str | None = None,
         **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABELHUB_")}
    # PYTHONPATH: this checkout's code, not whichever copy is installed in the venv.
    full_env.update({"LABELHUB_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=full_env, cwd=tmp_path, input=stdin,
        capture_output=True, text=True, timeout=120, check=False,
    )


def _run_here(tmp_path: Path, *args: str, stdin: str | None = None,
              **env: str) -> subprocess.CompletedProcess[str]:
    """:func:`_run` without the subprocess: ``server.cli.main`` with the same environment (the
    cached settings are dropped before and after), stdin and captured output."""
    from server.cli import main
    from server.settings import get_settings

    saved = dict(os.environ)
    out, err, stdin_before = io.StringIO(), io.StringIO(), sys.stdin
    try:
        for key in [k for k in os.environ if k.startswith("LABELHUB_")]:
            del os.environ[key]
        os.environ.update({"LABELHUB_DATA_DIR": str(tmp_path / "data"), **env})
        get_settings.cache_clear()
        sys.stdin = io.StringIO(stdin or "")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = stdin_before
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
    return subprocess.CompletedProcess(["labelhub", *args], code, out.getvalue(), err.getvalue())


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = _run(tmp_path, "--help")
    assert out.returncode == 0
    for command in ("serve", "worker", "db", "user", "demo"):
        assert command in out.stdout


def test_upgrade_add_user_and_demo(tmp_path: Path) -> None:
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    added = _run(tmp_path, "user", "add", "ana@example.com", "--name", "Ana")
    assert added.returncode == 0 and "password:" in added.stdout
    again = _run(tmp_path, "user", "add", "ana@example.com", "--name", "Ana",
                 "--password", "long-enough-1")
    assert again.returncode != 0 and "exists" in again.stderr
    demo = _run(tmp_path, "demo", "--print-login", LABELHUB_ADMIN_EMAIL="boss@example.com")
    assert demo.returncode == 0, demo.stderr
    # Users exist already, so no admin is bootstrapped and the demo needs one: nothing seeded.
    assert "seeded" not in demo.stdout
    assert "boss@example.com" in demo.stdout


@pytest.mark.slow
def test_demo_on_an_empty_database_seeds_and_prints_a_generated_login(tmp_path: Path) -> None:
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    first = _run(tmp_path, "demo", "--print-login")
    assert first.returncode == 0, first.stderr
    assert "seeded the demo project" in first.stdout
    password = (tmp_path / "data" / "admin_password").read_text().strip()
    assert f"password {password}" in first.stdout
    second = _run(tmp_path, "demo", "--print-login")
    assert "seeded" not in second.stdout and f"password {password}" in second.stdout


def _one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> bool:
    lines = out.stderr.splitlines()
    return (out.returncode == 2 and len(lines) == 1 and lines[0].startswith("labelhub")
            and all(w in lines[0] for w in words) and "Traceback" not in out.stderr)


async def test_user_commands_and_one_line_errors(database_url: str, app: Starlette,
                                                 tmp_path: Path) -> None:
    env = {"LABELHUB_DATABASE_URL": database_url, "LABELHUB_PASSWORD_TIME_COST": "1",
           "LABELHUB_PASSWORD_MEMORY_KIB": "1024"}

    async def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(_run_here, tmp_path, *args, stdin=stdin, **env)

    # The first as a user runs it; the rest in this process.
    added = await asyncio.to_thread(_run, tmp_path, "user", "add", "Bea@Example.com", "--name",
                                    " Bea ", "--password", "password-1", **env)
    assert added.returncode == 0 and "bea@example.com" in added.stdout, added.stderr
    assert _one_line_error(await cli("user", "add", "not-an-email", "--name", "X"), "email")
    assert _one_line_error(await cli("user", "add", "x@example.com", "--name", "X",
                                     "--password", "short"), "password", "8")
    assert _one_line_error(await cli("user", "add", "x@example.com"), "--name")
    assert _one_line_error(await cli("user", "add", "x@example.com", "--name", "  "), "name")
    assert _one_line_error(await cli("user", "add", "bea@example.com", "--name", "B",
                                     "--password", "password-2"), "exists")
    listed = await cli("user", "list")
    assert listed.returncode == 0
    assert any("bea@example.com" in line and line.rstrip().endswith("Bea")
               for line in listed.stdout.splitlines())
    assert ADMIN_EMAIL in listed.stdout

    bea = await login(app, "bea@example.com", "password-1")
    assert bea.user["name"] == "Bea"
    # The new password from stdin (not a terminal); the old sessions end.
    changed = await cli("user", "passwd", "bea@example.com", stdin="password-new\n")
    assert changed.returncode == 0, changed.stderr
    assert (await bea.client.get("/api/v1/me")).status_code == 401
    await bea.client.aclose()
    bea = await login(app, "bea@example.com", "password-new")
    assert _one_line_error(await cli("user", "passwd", "bea@example.com", stdin="short\n"),
                           "password")
    assert _one_line_error(await cli("user", "passwd", "ghost@example.com",
                                     "--password", "password-3"), "no user", "ghost@example.com")

    assert (await cli("user", "deactivate", "bea@example.com")).returncode == 0
    assert (await bea.client.get("/api/v1/me")).status_code == 401
    await bea.client.aclose()
    assert _one_line_error(await cli("user", "deactivate", ADMIN_EMAIL), "last active site admin")
    assert _one_line_error(await cli("user", "deactivate", "ghost@example.com"), "no user")
    assert (await cli("user", "activate", "bea@example.com")).returncode == 0
    bea = await login(app, "bea@example.com", "password-new")
    await bea.client.aclose()


def test_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    assert _one_line_error(_run(tmp_path, "user", "list"), "labelhub db upgrade")


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        # db upgrade first: a busy port must be reported whatever state the database is in,
        # but serve reads the admin login before it binds.
        assert _run(tmp_path, "db", "upgrade").returncode == 0
        out = _run(tmp_path, "serve", "--port", port, LABELHUB_WORKERS="0")
    assert _one_line_error(out, f"127.0.0.1:{port}")
    assert "another server" in out.stderr


async def test_serve_freezes_what_startup_made_paces_full_collections_and_watches_the_loop(
        database_url: str, tmp_path: Path) -> None:
    """Once the app has started, what it made (engine, pools, caches) is out of the cyclic
    collector's generations: full collections walk only what came after; they are paced by
    the clock (server/_gc.py); and the loop watch runs until shutdown (server/cli.py)."""
    import gc

    import uvicorn

    from server._gc import FULL_OFF
    from server.app import create_app
    from server.cli import _uvicorn_server
    from tests.conftest import make_settings

    settings = make_settings(database_url, tmp_path / "data")
    before = gc.get_threshold()
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    config.load()
    server = _uvicorn_server(settings)(config)
    server.lifespan = config.lifespan_class(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        gc.unfreeze()
        try:
            await server.startup(sockets=[sock])
            engine = app.state.engine
            assert gc.get_freeze_count() > 0
            assert not any(obj is engine for obj in gc.get_objects())  # frozen, not tracked
            watch = server.watch  # type: ignore[attr-defined]
            assert watch is not None and watch._thread.is_alive()
            threshold, task = server.paced  # type: ignore[attr-defined]
            assert gc.get_threshold()[2] == FULL_OFF and threshold == before[2]
            assert not task.done()
            await server.shutdown(sockets=[sock])
            assert watch._thread is None and watch._gc not in gc.callbacks
            assert task.cancelled() and gc.get_threshold() == before
        finally:
            gc.unfreeze()
            gc.set_threshold(*before)
