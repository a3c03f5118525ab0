"""Both backends behind the one interface: the local directory and S3 (a real SeaweedFS)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.storage import LocalStore, StorageUnavailable, Store, store_for
from tests._seaweed import Seaweed


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "data")
    url: str = request.getfixturevalue("s3_url")
    return store_for(url, tmp_path)


async def test_put_get_list_delete(store: Store) -> None:
    await store.put_many([("images/ab/abc", b"original"), ("images/ab/abc.thumb.jpg", b"th")])
    assert await store.get("images/ab/abc") == b"original"
    assert await store.size("images/ab/abc.thumb.jpg") == 2
    blob = await store.open("images/ab/abc")
    assert blob.size == 8 and b"".join([c async for c in blob.chunks]) == b"original"
    assert sorted([item async for item in store.list("images/")]) == [
        ("images/ab/abc", 8), ("images/ab/abc.thumb.jpg", 2)]
    await store.delete_many(["images/ab/abc", "images/ab/abc.thumb.jpg", "images/zz/never"])
    assert await store.size("images/ab/abc") is None
    with pytest.raises(FileNotFoundError):
        await store.get("images/ab/abc")
    with pytest.raises(FileNotFoundError):
        await store.open("images/ab/abc")


async def test_a_large_object_is_written_from_chunks(store: Store) -> None:
    part = bytes(range(256)) * (1 << 14)  # 4 MiB; three of them need a multipart upload on S3

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield part[i:] + part[:i]

    assert await store.put_stream("exports/big.zip", chunks()) == 3 * len(part)
    blob = await store.open("exports/big.zip")
    assert blob.size == 3 * len(part)
    got = b"".join([c async for c in blob.chunks])
    assert got == b"".join(part[i:] + part[:i] for i in range(3))


def test_local_writes_leave_no_staging_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_many_now([("images/aa/x", b"1"), ("images/aa/y", b"2")])
    assert list(store.tmp.iterdir()) == []
    (store.tmp / "put-left-by-a-crash").write_bytes(b"partial")
    assert store.forget_partial(older_than=0) == 1
    assert list(store.tmp.iterdir()) == []


def test_storage_urls_pick_the_backend(tmp_path: Path) -> None:
    assert isinstance(store_for("", tmp_path), LocalStore)
    assert isinstance(store_for(f"file://{tmp_path}", "unused"), LocalStore)
    with pytest.raises(ValueError, match="unknown scheme"):
        store_for("ftp://host/x", tmp_path)


class _Outage:
    """A TCP relay in front of the store that can stop answering, as a hung store or a network
    partition does: while ``down`` is set, new connections are accepted and their requests read
    but never answered, and relayed connections stop relaying. The client under test keeps one
    endpoint throughout, so its pooled connections live through the outage and the recovery."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = ""
        self.down = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def __aenter__(self) -> _Outage:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.endpoint = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.down.is_set():
                await reader.read()  # swallow the request until the client gives up
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

            async def relay(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(1 << 16):
                    if self.down.is_set():
                        await asyncio.Future()  # hung: hold the connection, relay nothing
                    dst.write(data)
                    await dst.drain()

            try:
                await asyncio.gather(relay(reader, up_writer), relay(up_reader, writer))
            finally:
                up_writer.close()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def test_a_store_that_does_not_answer_is_unavailable(
        seaweed: Seaweed, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A relay rather than SIGSTOP on the session's store: once, under CI load, a write to the
    # frozen store still succeeded (cause not found); the relay's outage is exactly the one
    # this test names, whatever else runs on the machine.
    async with _Outage(seaweed.s3_port) as outage:
        monkeypatch.setenv("AWS_ENDPOINT_URL", outage.endpoint)
        store = store_for(s3_url, tmp_path, timeout=2.0)
        await store.put_many([("images/aa/before", b"x")])
        outage.down.set()
        with pytest.raises(StorageUnavailable):
            await store.put_many([("images/aa/during", b"y")])
        with pytest.raises(StorageUnavailable):
            await store.get("images/aa/before")
        outage.down.clear()
        await store.put_many([("images/aa/after", b"z")])
        assert await store.get("images/aa/before") == b"x"
        assert await store.size("images/aa/during") is None
