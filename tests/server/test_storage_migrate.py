"""``labelhub storage migrate``: a local data directory copied into a real S3 store, resumably."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.cli import main
from server.storage import LocalStore, Store, content_keys, store_for


async def _keys(store: Store, prefix: str) -> list[str]:
    return sorted([key async for key, _ in store.list(prefix)])


def test_migrate_copies_then_resumes_with_only_what_is_missing(
        s3_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Synchronous: the command runs its own event loop, as it does from a shell.
    local = LocalStore(tmp_path / "data")
    shas = [f"{i:02x}" + "a" * 62 for i in range(3)]
    asyncio.run(local.put_many([(key, f"{key}-bytes".encode()) for sha in shas
                                for key in content_keys(sha)]
                               + [("exports/2026/coco.zip", b"zip")]))
    (local.tmp / "put-partial").write_bytes(b"half a file")  # never copied

    assert main(["storage", "migrate", "--from", str(local.root), "--to", s3_url]) == 0
    assert "copied 7 files, 0 were there already" in capsys.readouterr().out
    bucket = store_for(s3_url, tmp_path)
    assert asyncio.run(_keys(bucket, "")) == sorted(
        [*asyncio.run(_keys(local, "images/")), "exports/2026/coco.zip"])
    first = content_keys(shas[1])[0]
    assert asyncio.run(bucket.get(first)) == f"{first}-bytes".encode()

    # Cut short (one object lost) and run again: only that one is copied.
    asyncio.run(bucket.delete_many([content_keys(shas[2])[1]]))
    assert main(["storage", "migrate", "--from", str(local.root), "--to", s3_url]) == 0
    assert "copied 1 files, 6 were there already" in capsys.readouterr().out


def test_migrate_needs_a_bucket_and_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    assert main(["storage", "migrate", "--from", str(tmp_path), "--to", "file:///x"]) == 2
    assert "s3://bucket/prefix" in capsys.readouterr().err
    assert main(["storage", "migrate", "--from", str(tmp_path), "--to", "s3://b/p"]) == 2
    assert "no images/ directory" in capsys.readouterr().err
