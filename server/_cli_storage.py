"""``labelhub storage migrate``: copy a local data directory's images (and exports) into the
bucket ``LABELHUB_STORAGE_URL`` names, so a deployment can move to object storage.

Resumable: what the bucket already holds with the same size is skipped, so a run cut short
(or repeated) copies only the rest. Content-addressed keys never change, so "same key, same
size" is the same file. Copy first, then switch the servers' ``LABELHUB_STORAGE_URL``, then run
it once more to pick up what was uploaded meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server._cli_users import CliError
from server.settings import get_settings

if TYPE_CHECKING:  # imported by the command: the CLI starts without OpenCV and numpy
    from server.storage import LocalStore, Store

__all__ = ["add_storage_commands", "migrate"]

_BATCH = 64  # files read and sent at a time (the S3 backend sends them concurrently)
PREFIXES = ("images/", "exports/")


async def migrate(source: LocalStore, target: Store, out: Any = sys.stdout) -> tuple[int, int]:
    """Copy every object of ``source`` missing from ``target``; ``(copied, skipped)``."""
    have: dict[str, int] = {}
    for prefix in PREFIXES:
        async for key, size in target.list(prefix):
            have[key] = size
    todo: list[tuple[str, int]] = []
    skipped = 0
    for prefix in PREFIXES:
        async for key, size in source.list(prefix):
            if have.get(key) == size:
                skipped += 1
            else:
                todo.append((key, size))
    print(f"{len(todo)} files to copy, {skipped} already in {target.url}", file=out)
    copied = 0
    for start in range(0, len(todo), _BATCH):
        batch = todo[start:start + _BATCH]
        items = [(key, await source.get(key)) for key, _ in batch]
        await target.put_many(items)
        copied += len(batch)
        if copied % (_BATCH * 50) == 0 or copied == len(todo):
            print(f"  {copied}/{len(todo)}", file=out)
    return copied, skipped


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.storage import LocalStore, StorageUnavailable, store_for

    settings = get_settings()
    source_dir = Path(args.source) if args.source else settings.data_dir
    url = args.to or settings.storage_url
    if not url.startswith(("s3://", "s3a://")):
        raise CliError("say where to copy to: --to s3://bucket/prefix or LABELHUB_STORAGE_URL")
    if not (source_dir / "images").is_dir():
        raise CliError(f"{source_dir} holds no images/ directory")
    target = store_for(url, source_dir, settings.storage_timeout_seconds)
    try:
        copied, skipped = asyncio.run(migrate(LocalStore(source_dir), target))
    except StorageUnavailable as exc:
        raise CliError(f"{exc.message}; run the command again to resume") from None
    print(f"copied {copied} files, {skipped} were there already")
    return 0


def add_storage_commands(sub: argparse._SubParsersAction[Any]) -> None:
    storage = sub.add_parser("storage", help="image storage")
    storage_sub = storage.add_subparsers(dest="storage_command", required=True)
    mig = storage_sub.add_parser(
        "migrate", help="copy a local data directory's images into the S3 bucket (resumable)")
    mig.add_argument("--from", dest="source", default=None,
                     help="the data directory (default: LABELHUB_DATA_DIR)")
    mig.add_argument("--to", default=None,
                     help="s3://bucket/prefix (default: LABELHUB_STORAGE_URL)")
    mig.set_defaults(func=cmd_migrate)
