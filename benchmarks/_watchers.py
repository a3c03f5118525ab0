"""The watchers of ``benchmarks.hub``'s fan-out and latency phases, in a process of their own.

``python -m benchmarks._watchers URL COUNT [--setup JSON_ARRAY] [--latency]``

Why it exists: with hundreds of ``websockets`` asyncio connections in the load generator's own
process, the client spends tens of microseconds per received frame (protocol parsing, task
wake-ups, ``json.loads``), so on a small machine the last watcher of a fan-out records its
timestamp milliseconds after the first and the "edit -> peer" latency measures the load generator
rather than the server. Here the connections are plain non-blocking sockets under one
``selectors`` loop, and a frame is timestamped the moment its bytes come out of ``recv()``: after
setup no WebSocket parsing happens at all. Server frames are unmasked, so the editor's
``"client_op_id":"t<time_ns>-..."`` appears verbatim in the bytes; each occurrence is one frame.
Two latencies per frame, both against that send time (CLOCK_REALTIME, shared by the processes of
the machine): *arrival*, the kernel's receive timestamp of the bytes on the watcher's socket
(``SO_TIMESTAMPNS``), which is when a peer has the frame whatever it does next; and *read*, when
this process got to ``recv()`` it. With 200 sockets becoming readable at once the last one is
read milliseconds after it arrived, on a core the server also needs: that part measures this
process. (A recv that returns several frames carries the first one's arrival time; at 50 ops/s
the frames of one socket are 20 ms apart.)

The handshake and the setup messages (``--setup``: JSON messages sent in order on each
connection, each waiting for the reply with the same ``"id"``) go through websockets' sans-I/O
``ClientProtocol`` (client frames must be masked; no extensions are offered).

Control, line by line: prints ``ready`` once every connection is set up; then reads from stdin
``go`` (start counting), ``expect TOTAL`` (print ``done`` once TOTAL frames are counted) and
``stop`` (print ``{"frames": N, "latencies_ms": [...], "read_latencies_ms": [...]}`` and exit;
``latencies_ms`` is the arrival latency; the latencies only with ``--latency``). Pings are not answered (runs are far shorter than the server's ping interval);
a connection the server closes is dropped. What remains per frame (a wake-up from ``epoll``, one
``recv`` and a byte search, roughly 15-20 us on a small VM) runs beside the server on another
core instead of inside the editors' event loop.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

MARKER = b'"client_op_id":"t'
MARKER_LEN = len(MARKER)
TAIL = MARKER_LEN - 1  # bytes that may hold the start of a marker split across two recv()s
MAX_DIGITS = 20  # time_ns() fits in 20 decimal digits
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the constant is not always exported
TIMESPEC = struct.Struct("qq")
ANCILLARY_SIZE = socket.CMSG_SPACE(TIMESPEC.size)
RECV_SIZE = 1 << 18
# One receive buffer for every socket: ``recv(RECV_SIZE)`` would allocate (mmap) and shrink a
# fresh 256 KiB object per call, which costs more than everything else done per frame.
BUFFER = bytearray(RECV_SIZE)
VIEW = memoryview(BUFFER)
BATCH = 100
SETUP_TIMEOUT = 120.0


class SetupError(RuntimeError):
    pass


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    protocol: ClientProtocol
    setup: list[dict[str, Any]]
    step: int = 0  # index of the setup message awaiting its reply
    ready: bool = False
    tail: bytes = b""  # unresolved end of the previous recv() while measuring


@dataclass
class Stats:
    latency: bool
    frames: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # arrival (kernel timestamp)
    read_latencies_ms: list[float] = field(default_factory=list)  # recv() in this process


def _send(sock: socket.socket, chunks: list[bytes]) -> None:
    """Write everything (small setup traffic); waits for room if the send buffer is full."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                select.select([], [sock], [], 5.0)


def _send_next(conn: Conn) -> None:
    """Send the next setup message, or mark the connection ready when there is none."""
    if conn.step >= len(conn.setup):
        conn.ready = True
        return
    msg = conn.setup[conn.step]
    conn.protocol.send_text(json.dumps(msg, separators=(",", ":")).encode())
    _send(conn.sock, conn.protocol.data_to_send())


def _on_setup_data(conn: Conn, data: bytes) -> None:
    """Feed bytes received before the connection is ready to the sans-I/O protocol."""
    if not data:
        raise SetupError("connection closed during setup")
    protocol = conn.protocol
    protocol.receive_data(data)
    _send(conn.sock, [d for d in protocol.data_to_send() if d])
    for event in protocol.events_received():
        if isinstance(event, Response):
            if protocol.handshake_exc is not None:
                raise SetupError(f"handshake failed: {protocol.handshake_exc!r}")
            _send_next(conn)
        elif isinstance(event, Frame) and event.opcode is Opcode.TEXT and not conn.ready:
            reply = json.loads(bytes(event.data))
            msg = conn.setup[conn.step]
            if reply.get("id") != msg.get("id"):
                continue
            if reply.get("type") == "error":
                raise SetupError(f"{msg.get('type')}: {reply}")
            conn.step += 1
            _send_next(conn)
        if conn.ready:
            break
    if not conn.ready and protocol.state in (State.CLOSING, State.CLOSED):
        raise SetupError(f"connection closed during setup: {protocol.close_exc!r}")


def _open(url: str, setup: list[dict[str, Any]], sel: selectors.BaseSelector) -> Conn:
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, extensions=None, max_size=None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # arrival times (see the docstring)
    err = sock.connect_ex((uri.host, uri.port))
    if err not in (0, errno.EINPROGRESS):
        raise SetupError(f"connect: {os.strerror(err)}")
    conn = Conn(sock, protocol, setup)
    sel.register(sock, selectors.EVENT_WRITE, conn)
    return conn


def _on_connected(conn: Conn, sel: selectors.BaseSelector) -> None:
    err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise SetupError(f"connect: {os.strerror(err)}")
    conn.protocol.send_request(conn.protocol.connect())
    _send(conn.sock, conn.protocol.data_to_send())
    sel.modify(conn.sock, selectors.EVENT_READ, conn)


def _drain(sel: selectors.BaseSelector, conn: Conn) -> None:
    """Read and discard what a ready connection received (before ``go``)."""
    try:
        size = conn.sock.recv_into(BUFFER)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        size = 0
    if not size:
        sel.unregister(conn.sock)
        conn.sock.close()


def set_up(url: str, count: int, setup: list[dict[str, Any]],
           sel: selectors.BaseSelector) -> list[Conn]:
    """Open ``count`` connections, ``BATCH`` at a time, each through the handshake and setup."""
    conns: list[Conn] = []
    deadline = time.monotonic() + SETUP_TIMEOUT
    for first in range(0, count, BATCH):
        batch = [_open(url, setup, sel) for _ in range(min(BATCH, count - first))]
        conns += batch
        while not all(c.ready for c in batch):
            if time.monotonic() > deadline:
                raise SetupError(f"setup took over {SETUP_TIMEOUT:.0f} s")
            for key, mask in sel.select(timeout=1.0):
                conn = key.data
                if not isinstance(conn, Conn):
                    continue
                if mask & selectors.EVENT_WRITE:
                    _on_connected(conn, sel)
                elif conn.ready:
                    _drain(sel, conn)
                else:
                    try:
                        size = conn.sock.recv_into(BUFFER)
                    except (BlockingIOError, InterruptedError):
                        continue
                    _on_setup_data(conn, bytes(VIEW[:size]))
    return conns


def scan(conn: Conn, data: bytes, now_ns: int, arrived_ns: int, stats: Stats) -> None:
    """Count the markers in ``data`` (after what was left of the previous recv()), exactly once.

    A marker whose digits are complete (followed by ``-``) is counted and consumed. What is kept
    for the next recv() is either a marker whose digits run to the end of the buffer, or the last
    ``TAIL`` bytes (which can hold a marker's beginning but never a whole marker, so nothing
    counted is counted again).
    """
    buf = conn.tail + data if conn.tail else data
    end = len(buf)
    keep_from = end - TAIL if end > TAIL else 0
    pos = buf.find(MARKER)
    while pos != -1:
        digits = pos + MARKER_LEN
        dash = buf.find(b"-", digits, digits + MAX_DIGITS + 1)
        if dash == -1 and end <= digits + MAX_DIGITS:  # digits (or the dash) still to come
            keep_from = pos
            break
        if dash != -1 and buf[digits:dash].isdigit():
            stats.frames += 1
            if stats.latency:
                sent_ns = int(buf[digits:dash])
                stats.latencies_ms.append((arrived_ns - sent_ns) / 1e6)
                stats.read_latencies_ms.append((now_ns - sent_ns) / 1e6)
        after = digits if dash == -1 else dash
        keep_from = max(keep_from, after)
        pos = buf.find(MARKER, after)
    conn.tail = buf[keep_from:]


def _arrival(ancillary: list[tuple[int, int, bytes]], default: int) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return int(seconds * 1_000_000_000 + nanoseconds)
    return default


def measure(sel: selectors.BaseSelector, stats: Stats) -> None:
    """The control loop: stdin commands, and the sockets read (counted only after ``go``)."""
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    sel.register(stdin, selectors.EVENT_READ, None)
    counting, expected, done = False, -1, False
    pending = b""
    while True:
        for key, _mask in sel.select():
            conn = key.data
            if conn is None:  # a command
                try:
                    chunk = os.read(stdin, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    return  # the parent is gone
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    words = line.decode().split()
                    if not words:
                        continue
                    if words[0] == "go":
                        counting = True
                    elif words[0] == "expect":
                        expected = int(words[1])
                    elif words[0] == "stop":
                        out = {"frames": stats.frames, "latencies_ms": stats.latencies_ms,
                               "read_latencies_ms": stats.read_latencies_ms}
                        sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
                        sys.stdout.flush()
                        return
                if expected >= 0 and not done and stats.frames >= expected:
                    done = True
                    print("done", flush=True)
                continue
            if not counting:
                _drain(sel, conn)
                continue
            try:
                if stats.latency:
                    size, ancillary, _flags, _addr = conn.sock.recvmsg_into([BUFFER], ANCILLARY_SIZE)
                else:
                    size, ancillary = conn.sock.recv_into(BUFFER), []
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                size = 0
            now_ns = time.time_ns()
            if not size:
                sel.unregister(conn.sock)
                conn.sock.close()
                continue
            scan(conn, bytes(VIEW[:size]), now_ns, _arrival(ancillary, now_ns), stats)
            if expected >= 0 and not done and stats.frames >= expected:
                done = True
                print("done", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._watchers")
    parser.add_argument("url", help="ws:// URL, may carry ?token=...")
    parser.add_argument("count", type=int, help="number of watcher connections")
    parser.add_argument("--setup", default="[]",
                        help="JSON array of messages sent in order, each awaiting its reply")
    parser.add_argument("--latency", action="store_true", help="report per-frame latencies")
    args = parser.parse_args(argv)
    setup = json.loads(args.setup)
    if not isinstance(setup, list) or not all(isinstance(m, dict) and "id" in m for m in setup):
        parser.error("--setup must be a JSON array of objects with an 'id'")
    sel = selectors.DefaultSelector()
    try:
        set_up(args.url, args.count, setup, sel)
    except (SetupError, OSError) as exc:
        print(f"watchers: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    measure(sel, Stats(latency=args.latency))
    # Sockets are left to the exit: closing them one by one would only cost time.


if __name__ == "__main__":
    main(sys.argv[1:])
