"""Fixtures for tests/server: ``live_server``, a real uvicorn serving the hub (for tests that
check that REST changes and imports reach live clients)."""

from __future__ import annotations

from tests.hub.conftest import server as live_server

__all__ = ["live_server"]
