"""Both backends behind the one interface: the local directory and S3 (a real SeaweedFS)."""

from __future__ import annotations

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


async def test_a_store_that_does_not_answer_is_unavailable(seaweed: Seaweed, s3_url: str,
                                                           tmp_path: Path) -> None:
    store = store_for(s3_url, tmp_path, timeout=2.0)
    await store.put_many([("images/aa/before", b"x")])
    seaweed.stop()
    try:
        with pytest.raises(StorageUnavailable):
            await store.put_many([("images/aa/during", b"y")])
        with pytest.raises(StorageUnavailable):
            await store.get("images/aa/before")
    finally:
        seaweed.resume()
    await store.put_many([("images/aa/after", b"z")])
    assert await store.get("images/aa/before") == b"x"
