"""Where the processes of one ``labelhub serve`` keep their metrics (no prometheus import here:
the directory must be in the environment before ``prometheus_client`` is first imported)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["ENV", "process_dir", "use_process_dir"]

ENV = "PROMETHEUS_MULTIPROC_DIR"


def process_dir(root: Path, pid: int) -> Path:
    """A fresh metrics directory for one server process and the workers it starts, under
    ``root``; directories of servers no longer running are removed."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(pid)
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    return mine


def use_process_dir(root: Path) -> str:
    """Set the environment for this process (and its children) unless the operator chose a
    directory already; returns the one in use."""
    if not os.environ.get(ENV):
        os.environ[ENV] = str(process_dir(root, os.getpid()))
    return os.environ[ENV]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
