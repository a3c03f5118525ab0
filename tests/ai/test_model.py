"""Loading the network: the cache, batches, and clear errors for bad weights."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from server.ai.errors import ModelError
from server.ai.model import BATCH, Network, weights_path


def test_batch_and_single_give_the_same_features(network: Network) -> None:
    rng = np.random.default_rng(1)
    images = [data.chelsea(), data.coffee(), data.astronaut()]
    images += [rng.integers(0, 256, (60 + i, 90, 3), dtype=np.uint8) for i in range(BATCH)]
    batch = network.features(images)
    assert batch.shape == (len(images), 1280) and batch.dtype == np.float32
    for i in (0, 2, len(images) - 1):  # across the batch-of-16 boundary too
        np.testing.assert_allclose(batch[i], network.features([images[i]])[0], atol=1e-4)
    assert network.features([]).shape == (0, 1280)
    assert network.classify([]).shape == (0, 1000)


def test_the_cache_is_reused_and_a_damaged_one_rebuilt(model_cache: Path, tmp_path: Path) -> None:
    [cached] = model_cache.glob("lite0-*.onnx")
    shutil.copy(cached, tmp_path / cached.name)
    mtime = (tmp_path / cached.name).stat().st_mtime_ns
    Network.load(tmp_path, nice=0)
    assert (tmp_path / cached.name).stat().st_mtime_ns == mtime  # opened, not converted again
    (tmp_path / cached.name).write_bytes(cached.read_bytes()[:1000])
    net = Network.load(tmp_path, nice=0)
    assert (tmp_path / cached.name).stat().st_size == cached.stat().st_size
    assert net.features([data.coffee()]).shape == (1, 1280)
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporary file left


def test_two_loads_converting_at_once_both_succeed(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def load() -> None:
        try:
            Network.load(tmp_path, nice=0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(tmp_path.iterdir())) == 1


def test_truncated_weights_are_a_clear_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_bytes(weights_path().read_bytes()[:100_000])
    with pytest.raises(ModelError, match="sha256"):
        Network.load(tmp_path / "cache", nice=0, weights=bad)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_missing_weights_are_a_clear_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read the network weights"):
        Network.load(tmp_path, nice=0, weights=tmp_path / "absent.pth")


def test_the_thread_running_the_network_lowers_its_own_priority(model_cache: Path) -> None:
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int] = {}

    def work() -> None:
        tid = threading.get_native_id()
        seen["before"] = os.getpriority(os.PRIO_PROCESS, tid)
        net = Network.load(model_cache, nice=5)
        net.features([np.zeros((32, 32, 3), np.uint8)])
        net.features([np.zeros((32, 32, 3), np.uint8)])  # lowered once, not twice
        seen["after"] = os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["after"] == min(19, seen["before"] + 5)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    # On the main thread (a server's event loop) the network runs at the thread's priority.
    net = Network.load(model_cache, nice=5)
    net.features([np.zeros((32, 32, 3), np.uint8)])
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


def test_an_uninstalled_weights_package_is_a_clear_model_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import server.ai.model as model

    monkeypatch.setattr(model, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(ModelError, match="not installed"):
        model.weights_path()


def test_an_unwritable_cache_is_a_clear_model_error(tmp_path: Path) -> None:
    blocker = tmp_path / "models"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(ModelError, match="cannot cache the converted network"):
        Network.load(blocker, nice=0)
