"""The default backend: a directory (``LABELHUB_DATA_DIR``), keys as relative paths.

Writes go to ``images/tmp/`` and are renamed into place, so a key never shows a half-written
file. ``put_many`` does not sync file by file (~2.4 ms per fsync on the CI disk): it writes and
renames every file, then makes them all durable — data and directory entries — with one
``syncfs`` of the file system before it returns (``os.sync`` where ``syncfs`` is missing).
``put_many_now`` is the same, blocking, and picklable with its store: the upload route runs it in
the offload pool (``server/_upload_save.py``), so thousands of file syscalls do not compete
with the serving process's event loop for its core and the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

from server.storage.base import Blob, StorageUnavailable

__all__ = ["LocalStore", "sync_filesystem", "unavailable"]

_CHUNK = 1 << 20
P = ParamSpec("P")
T = TypeVar("T")
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def sync_filesystem(path: Path) -> None:
    """Flush every dirty file and directory of the file system holding ``path`` to disk."""
    if _syncfs is None:  # pragma: no cover - every Linux libc since 2.14 has it
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(fd) != 0:  # pragma: no cover - only on an I/O error of the disk
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "images" / "tmp"
        self.url = root.resolve().as_uri()

    def path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad key {key!r}")
        return self.root / key

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    # --- writing ---------------------------------------------------------------------------

    def put_many_now(self, items: Sequence[tuple[str, bytes]], owner: int | None = None
                     ) -> None:
        """Write, rename into place, then one ``syncfs``. Plain ``os`` calls (no ``mkstemp``,
        no ``mkdir`` per file): for small images these syscalls are the whole cost. ``owner``:
        the pid of the server this runs for in a worker process; when it is gone (killed), the
        writing stops, so no file lands after the restarted server's sweep looked."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        prefix = f"{self.tmp}/put-{os.getpid()}-{uuid.uuid4().hex[:12]}-"
        made: set[Path] = set()
        for i, (key, data) in enumerate(items):
            if owner is not None:
                os.kill(owner, 0)  # ProcessLookupError (an OSError) once the server is gone
            final = self.path(key)
            if final.parent not in made:
                final.parent.mkdir(parents=True, exist_ok=True)
                made.add(final.parent)
            _write_new(f"{prefix}{i}", final, data)
        sync_filesystem(self.root)

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if items:
            await _io(self.put_many_now, items)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    await asyncio.to_thread(fh.write, chunk)
                    size += len(chunk)
                await asyncio.to_thread(os.fsync, fh.fileno())
            final = self.path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(name, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return size

    # --- reading ---------------------------------------------------------------------------

    async def get(self, key: str) -> bytes:
        return await _io(self.path(key).read_bytes)

    async def open(self, key: str) -> Blob:
        fh = await _io(self.path(key).open, "rb")
        size = os.fstat(fh.fileno()).st_size

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                    yield chunk
            finally:
                fh.close()

        return Blob(size, chunks())

    async def size(self, key: str) -> int | None:
        try:
            return (await _io(self.path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def delete_many(self, keys: Sequence[str]) -> None:
        def remove() -> None:
            for key in keys:
                self.path(key).unlink(missing_ok=True)

        await _io(remove)

    async def list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        base = self.root / prefix if prefix else self.root
        found = await _io(_walk, base, self.root, self.tmp)
        for item in found:
            yield item

    def forget_partial(self, older_than: float) -> int:
        """Remove write leftovers (a process killed mid-write) older than ``older_than`` s."""
        removed = 0
        limit = time.time() - older_than
        for entry in self.tmp.glob("*") if self.tmp.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime <= limit:
                    entry.unlink()
                    removed += 1
        return removed

    async def close(self) -> None:
        return None


def _write_new(name: str, final: Path, data: bytes) -> None:
    """``data`` into a new file ``name`` (never an existing one), then renamed to ``final``."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(name, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def unavailable(exc: OSError) -> StorageUnavailable:
    """A full or failing disk: the store is unavailable (REST 503)."""
    return StorageUnavailable(f"the image store cannot be written: {exc.strerror}")


def _walk(base: Path, root: Path, skip: Path) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if not base.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in filenames:
            full = Path(dirpath) / name
            with contextlib.suppress(FileNotFoundError):
                out.append((full.relative_to(root).as_posix(), full.stat().st_size))
    return out


async def _io(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A blocking file call in a thread; a full or failing disk is the store being unavailable."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise unavailable(exc) from exc
