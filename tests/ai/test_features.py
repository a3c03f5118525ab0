"""The feature registry: keys, decoding, HOG-only use without the network."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.ai.features import (
    FEATURE_DIMS,
    FEATURE_KEYS,
    HOG,
    LITE0,
    Extractor,
    ImageDecodeError,
    decode_image,
)


def test_keys_are_versioned_and_have_dims() -> None:
    assert set(FEATURE_KEYS) == {LITE0, HOG}
    for key in FEATURE_KEYS:
        name, _, version = key.partition("@")
        assert name and version.isdigit()
        assert FEATURE_DIMS[key] > 0


def test_decode_image_gives_rgb() -> None:
    bgr = np.zeros((12, 16, 3), np.uint8)
    bgr[:, :, 2] = 200  # red in OpenCV's BGR order
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    rgb = decode_image(png.tobytes())
    assert rgb.shape == (12, 16, 3)
    assert (rgb[:, :, 0] == 200).all() and not rgb[:, :, 2].any()


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_decode_image_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_hog_only_does_not_load_the_network(tmp_path: Path) -> None:
    extractor = Extractor(tmp_path)
    images = [np.zeros((30, 40, 3), np.uint8), np.full((50, 50, 3), 9, np.uint8)]
    out = extractor.compute(images, keys=[HOG])
    assert list(out) == [HOG]
    assert out[HOG].shape == (2, FEATURE_DIMS[HOG])
    assert extractor._network is None
    assert not list(tmp_path.iterdir())  # nothing converted or cached
    assert extractor.compute([], keys=[HOG])[HOG].shape == (0, FEATURE_DIMS[HOG])


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        Extractor(tmp_path).compute([np.zeros((4, 4, 3), np.uint8)], keys=["nope@1"])


def test_importing_features_loads_no_onnxruntime() -> None:
    import subprocess

    code = (
        "import sys, server.ai.features\nprint('onnxruntime' in sys.modules, 'onnx' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]


def test_all_features_are_unit_rows(model_cache: Path) -> None:
    from skimage import data

    extractor = Extractor(model_cache)
    noise = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    images = [data.chelsea(), data.coffee(), noise]
    out = extractor.compute(images)
    assert list(out) == list(FEATURE_KEYS)
    for key, rows in out.items():
        assert rows.shape == (3, FEATURE_DIMS[key]) and rows.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    cat, coffee, _ = out[LITE0]
    assert cat @ coffee < 0.9  # different photos, different features
    # A featureless image has no gradients: its HOG row is zero (cosine 0 to everything).
    flat = extractor.compute([np.zeros((20, 30, 3), np.uint8)])
    assert not flat[HOG].any()
    assert np.linalg.norm(flat[LITE0]) == pytest.approx(1.0, abs=1e-5)
