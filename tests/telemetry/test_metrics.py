"""The metrics module is pure (no async, web or database code), and choosing the multi-process
directory imports nothing that would fix prometheus-client's storage too early."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server.telemetry._dirs import process_dir

FORBIDDEN = ("asyncio", "starlette", "sqlalchemy", "uvicorn", "websockets", "aiosqlite", "asyncpg")


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(out.stdout))


def test_metrics_are_pure_and_the_directory_comes_first() -> None:
    loaded = _loaded("import server.telemetry.metrics")
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN] == []
    assert [m for m in loaded if m.startswith("server.") and not m.startswith("server.telemetry")] == []
    early = _loaded("import server.telemetry._dirs, server.cli")
    assert "prometheus_client" not in early


def test_process_dir_removes_only_dead_servers_directories(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / dead).mkdir()
    (tmp_path / dead / "counter_1.db").write_bytes(b"x")
    (tmp_path / "1").mkdir()  # init: alive, not ours to remove
    mine = process_dir(tmp_path, 4242_4242)
    assert mine == tmp_path / "42424242" and mine.is_dir() and list(mine.iterdir()) == []
    assert not (tmp_path / dead).exists()
    assert (tmp_path / "1").is_dir()
