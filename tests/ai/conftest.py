"""One converted network per test session (conversion takes about a second); ``live_server``
(a real uvicorn serving the hub) for tests that check that added predictions reach live clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.ai.model import Network
from tests.hub.conftest import server as live_server

__all__ = ["live_server", "model_cache", "network"]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    Network.load(path, nice=0)
    return path


@pytest.fixture(scope="session")
def network(model_cache: Path) -> Network:
    return Network.load(model_cache, nice=0)
