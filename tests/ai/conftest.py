"""One converted network per test session (conversion takes about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.ai.model import Network


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    Network.load(path, nice=0)
    return path


@pytest.fixture(scope="session")
def network(model_cache: Path) -> Network:
    return Network.load(model_cache, nice=0)
