"""The ``labelhub`` command, run as a user would run it: in a subprocess against a fresh data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._db import ROOT


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABELHUB_")}
    # PYTHONPATH: this checkout's code, not whichever copy is installed in the venv.
    full_env.update({"LABELHUB_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=full_env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = _run(tmp_path, "--help")
    assert out.returncode == 0
    for command in ("serve", "worker", "db", "user", "demo"):
        assert command in out.stdout


def test_upgrade_add_user_and_demo(tmp_path: Path) -> None:
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    added = _run(tmp_path, "user", "add", "ana@example.com", "--name", "Ana")
    assert added.returncode == 0 and "password:" in added.stdout
    again = _run(tmp_path, "user", "add", "ana@example.com", "--password", "long-enough-1")
    assert again.returncode != 0 and "exists" in again.stderr
    demo = _run(tmp_path, "demo", "--print-login", LABELHUB_ADMIN_EMAIL="boss@example.com")
    assert demo.returncode == 0, demo.stderr
    # Users exist already, so no admin is bootstrapped and the demo needs one: nothing seeded.
    assert "seeded" not in demo.stdout
    assert "boss@example.com" in demo.stdout


@pytest.mark.slow
def test_demo_on_an_empty_database_seeds_and_prints_a_generated_login(tmp_path: Path) -> None:
    assert _run(tmp_path, "db", "upgrade").returncode == 0
    first = _run(tmp_path, "demo", "--print-login")
    assert first.returncode == 0, first.stderr
    assert "seeded the demo project" in first.stdout
    password = (tmp_path / "data" / "admin_password").read_text().strip()
    assert f"password {password}" in first.stdout
    second = _run(tmp_path, "demo", "--print-login")
    assert "seeded" not in second.stdout and f"password {password}" in second.stdout
