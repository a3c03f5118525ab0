"""The ``labelhub`` command: serve, worker, db upgrade, user (server/_cli_users.py), storage
(server/_cli_storage.py), demo."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from server._cli_storage import add_storage_commands
from server._cli_users import CliError, add_user_commands
from server.settings import Settings, get_settings

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

    from server.telemetry.stalls import LoopWatch

ROOT = Path(__file__).resolve().parent.parent
# The transport's hard cap (= server.protocol.MAX_FRAME_BYTES; not imported, the CLI starts
# without pydantic). Messages past 64 KiB (an op past 8 MiB) get an error from the hub and the
# socket stays open; only a frame past this cap closes it (1009).
MAX_FRAME = 16 * 1024 * 1024


def _alembic_upgrade(settings: Settings, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def cmd_serve(args: argparse.Namespace) -> int:
    from server.telemetry._dirs import use_process_dir

    settings = get_settings()
    settings.ensure_data_dir()
    # Before prometheus_client is first imported (server.app imports it): this server and the
    # workers it starts write their metrics there, and /metrics adds them up.
    use_process_dir(settings.data_dir / "metrics")
    from server.app import create_app

    email, password, _ = admin_login(settings)
    settings = settings.model_copy(update={"admin_email": email, "admin_password": password})
    host, port = args.host or settings.host, args.port or settings.port
    try:
        # Bound here, before anything starts, so a busy port is one line, not a traceback.
        listener = _bind(host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another "
                       "server running there? choose --port or LABELHUB_PORT)") from None
    app = create_app(settings)
    from server import offload

    split = offload.core_split() if settings.cpu_split else None
    workers = [_spawn_worker(split[1] if split else None) for _ in range(settings.workers)]
    if split is not None:
        offload.pin(split[0])  # the event loop's cores; the pool's workers re-pin themselves
    try:
        _serve(app, listener, args, settings)
    finally:
        _stop_workers(workers)
    return 0



def _uvicorn_server(settings: Settings) -> type[uvicorn.Server]:
    import uvicorn

    class LabelhubServer(uvicorn.Server):
        """uvicorn's server, which once started (the app's lifespan done: engine, pools,
        caches and the modules they import exist) moves every object alive into the cyclic
        collector's permanent generation, paces full collections by the clock (server/_gc.py)
        and watches the event loop for stalls (server/telemetry/stalls.py) until it shuts down.

        Why freeze: those objects live as long as the process; left in the oldest generation,
        every full collection walked them all with the event loop stopped: 122,000 objects and
        77 ms per full pass with 200 sockets open, against 42,000 and 40 ms frozen
        (docs/performance.md, "Garbage collection")."""

        watch: LoopWatch | None = None
        paced: tuple[int, asyncio.Future[None]] | None = None  # CPython's threshold, the task

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            gc.collect()
            gc.freeze()
            if settings.gc_full_interval_seconds > 0:
                from server._gc import pace, paced_collections

                threshold = pace()
                self.paced = threshold, asyncio.ensure_future(
                    paced_collections(settings.gc_full_interval_seconds, threshold))
            if settings.loop_stall_log_ms > 0:
                from server.telemetry.stalls import LoopWatch

                self.watch = LoopWatch(log_after=settings.loop_stall_log_ms / 1000)
                self.watch.start()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if self.watch is not None:
                self.watch.stop()
            if self.paced is not None:
                from server._gc import unpace

                threshold, task = self.paced
                task.cancel()
                unpace(threshold)
            await super().shutdown(sockets=sockets)

    return LabelhubServer


def _worker_preexec(cores: frozenset[int] | None) -> None:  # pragma: no cover - in the child
    # Runs between fork and exec. Jobs yield the CPU to the server's requests, and with
    # cpu_split keep to the heavy cores (server.offload.core_split).
    os.nice(10)
    if cores:
        os.sched_setaffinity(0, cores)
    if sys.platform == "linux":
        import ctypes

        # PR_SET_PDEATHSIG: the kernel sends SIGTERM when the server dies, even by SIGKILL.
        with suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _spawn_worker(cores: frozenset[int] | None = None) -> subprocess.Popen[bytes]:
    """One ``labelhub worker`` beside the server, at lowered priority (on ``cores`` when
    given), ended with it."""
    # The same code as this process, whatever the working directory or installed copy.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker"],
                            env={**os.environ, "PYTHONPATH": path},
                            preexec_fn=lambda: _worker_preexec(cores))


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()  # the worker hands its running job back to the queue and exits
    from server.telemetry.metrics import mark_dead

    for proc in workers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        mark_dead(proc.pid)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, as uvicorn would make it (address reuse, IPv6 when the host is)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _serve(app: Starlette, listener: socket.socket, args: argparse.Namespace,
           settings: Settings) -> None:
    import uvicorn

    from server.telemetry.logs import configure_logging

    host, port = listener.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",  # uvloop (a dependency on Linux and macOS), else asyncio's own loop
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME,
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_level=args.log_level,
        log_config=configure_logging(settings.log_format, args.log_level),
        proxy_headers=True,
    )
    # uvicorn logs no address for a socket it is handed: say it as it would (tests wait for it).
    shown = f"[{host}]" if listener.family == socket.AF_INET6 else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port)
    _uvicorn_server(settings)(config).run(sockets=[listener])


async def _work(settings: Settings) -> None:
    from server.db import dispose, is_sqlite, make_engine, make_sessionmaker
    from server.jobs.worker import Worker

    url = settings.resolved_database_url
    # A worker runs one job at a time: its task and the lease heartbeat need two connections
    # at once, rarely more (every `labelhub serve` brings one worker: keep it light).
    engine = make_engine(url) if is_sqlite(url) else make_engine(url, pool_size=2, max_overflow=2)
    worker = Worker(settings, make_sessionmaker(engine))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await dispose(engine)


def cmd_worker(args: argparse.Namespace) -> int:
    import logging.config

    from server.telemetry.logs import configure_logging

    settings = get_settings()
    logging.config.dictConfig(configure_logging(settings.log_format, args.log_level))
    if settings.worker_metrics_port:
        # A worker on its own machine shows its job metrics itself (a serve's workers share
        # the serve's /metrics instead, through PROMETHEUS_MULTIPROC_DIR).
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    asyncio.run(_work(settings))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    _alembic_upgrade(get_settings(), args.revision)
    print("database is at", args.revision)
    return 0


async def _repair_text(settings: Settings, dry_run: bool) -> list[str]:
    from sqlalchemy.exc import DBAPIError

    from server.db import dispose, is_sqlite, make_engine, make_sessionmaker
    from server.text_repair import repair_text

    url = settings.resolved_database_url
    engine = make_engine(url)
    try:
        # PostgreSQL refuses lone surrogates and NUL in jsonb: only names need a look there.
        report = await repair_text(make_sessionmaker(engine), dry_run=dry_run,
                                   json_columns=is_sqlite(url))
    except DBAPIError as exc:
        first = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        raise CliError(f"database error ({first}); is it migrated? run `labelhub db upgrade`"
                       ) from None
    finally:
        await dispose(engine)
    return report.lines()


def cmd_db_repair_text(args: argparse.Namespace) -> int:
    for line in asyncio.run(_repair_text(get_settings(), args.dry_run)):
        print(line)
    return 0


def admin_login(settings: Settings) -> tuple[str, str, bool]:
    """The first admin's login: from settings, else a generated password kept in the data dir."""
    email = settings.admin_email or "admin@example.com"
    if settings.admin_password:
        return email, settings.admin_password, False
    path = settings.data_dir / "admin_password"
    if path.exists():
        return email, path.read_text().strip(), True
    settings.ensure_data_dir()
    password = secrets.token_urlsafe(12)
    path.write_text(password)
    path.chmod(0o600)
    return email, password, True


async def _demo(settings: Settings) -> int | None:
    from server.app import create_app
    from server.demo import seed_demo

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        return await seed_demo(app)


def cmd_demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    email, password, generated = admin_login(settings)
    settings = settings.model_copy(update={"admin_email": email, "admin_password": password})
    project_id = asyncio.run(_demo(settings))
    if project_id is not None:
        print(f"seeded the demo project (id {project_id})")
    if args.print_login:
        url = f"http://{settings.host}:{settings.port}"
        print("\n  Labelhub is starting on", url)
        print(f"  Log in as {email} with password {password}")
        if generated:
            print(f"  (generated; kept in {settings.data_dir / 'admin_password'})")
        print()
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: `labelhub user add --help` has the usage.
        self.exit(2, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="labelhub", description="Real-time collaborative image labeling server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API, the WebSocket hub and the web app")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)

    work = sub.add_parser("worker", help="run background jobs (as many workers as you like, "
                                         "on any machine sharing the PostgreSQL database)")
    work.add_argument("--log-level", default="info")
    work.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the database to the newest schema")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    repair = db_sub.add_parser("repair-text", help="find and fix text stored before the Unicode "
                                                   "checks (lone surrogates, control characters "
                                                   "in names)")
    repair.add_argument("--dry-run", action="store_true", help="only report what would change")
    repair.set_defaults(func=cmd_db_repair_text)

    add_user_commands(sub)
    add_storage_commands(sub)

    demo = sub.add_parser("demo", help="create the first admin and a demo project if the database is empty")
    demo.add_argument("--print-login", action="store_true")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"labelhub: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
