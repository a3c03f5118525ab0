"""The EfficientNet-Lite0 graph: architecture checks and what the converted network computes."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from server.ai.errors import ModelError
from server.ai.model import Network, weights_path
from server.ai.network import BLOCKS, check_architecture
from server.ai.weights import parse_legacy


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return parse_legacy(weights_path().read_bytes())


def test_the_architecture_table_is_lite0() -> None:
    assert len(BLOCKS) == 16
    assert [b.stride for b in BLOCKS].count(2) == 4  # with the stem: output stride 32
    assert sum(b.skip for b in BLOCKS) == 9


def test_architecture_check_rejects_other_weights(state: dict[str, np.ndarray]) -> None:
    check_architecture(state)
    missing = {k: v for k, v in state.items() if k != "_blocks.3._depthwise_conv.weight"}
    with pytest.raises(ModelError, match="missing"):
        check_architecture(missing)
    wrong = dict(state, **{"_blocks.3._depthwise_conv.weight": np.zeros((144, 1, 3, 3))})
    with pytest.raises(ModelError, match="wrong shape"):
        check_architecture(wrong)
    extra = dict(state, **{"_blocks.3._se_reduce.weight": np.zeros((6, 144, 1, 1))})
    with pytest.raises(ModelError, match="unexpected"):
        check_architecture(extra)


def _top(network: Network, image: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    probs = network.classify([image])[0]
    return [(network.class_names[i], float(probs[i])) for i in np.argsort(-probs)[:k]]


def test_cat_photo_is_an_egyptian_cat(network: Network) -> None:
    top = _top(network, data.chelsea())
    # The reference (torch, same weights) gives 0.78; a padding or epsilon slip moves it a lot.
    assert top[0][0] == "Egyptian cat"
    assert top[0][1] == pytest.approx(0.781, abs=0.01)
    assert {name for name, _ in top[1:]} == {"tabby", "tiger cat"}


def test_coffee_photo_is_an_espresso(network: Network) -> None:
    top = _top(network, data.coffee())
    assert top[0][0] == "espresso"
    assert top[0][1] == pytest.approx(0.905, abs=0.01)
    assert top[1][0] == "cup"


def test_outputs_and_their_shapes(network: Network) -> None:
    images = [data.chelsea(), data.coffee()]
    logits, feature, map16, map32 = network.run(images, ["logits", "feature", "map16", "map32"])
    assert logits.shape == (2, 1000)
    assert feature.shape == (2, 1280)
    assert map16.shape == (2, 112, 14, 14)
    assert map32.shape == (2, 1280, 7, 7)
    # The pooled feature is the mean of the last map (ReLU6: within [0, 6]).
    np.testing.assert_allclose(feature, map32.mean(axis=(2, 3)), atol=1e-5)
    assert feature.min() >= 0 and feature.max() <= 6
    probs = network.classify(images)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
