"""The legacy torch weights reader: layout, strides, corruption and refused globals."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from server.ai.errors import ModelError
from server.ai.model import WEIGHTS_SHA256, weights_path
from server.ai.weights import check_sha256, parse_legacy
from tests.ai._legacy import HEADER, legacy_file


def test_reads_tensors_with_offsets_and_strides() -> None:
    data = np.arange(12, dtype=np.float32)
    blob = legacy_file(
        {
            "a": ("0", 0, (3, 4), (4, 1)),
            "a_t": ("0", 0, (4, 3), (1, 4)),  # a transposed view of the same storage
            "tail": ("0", 10, (2,), (1,)),
            "scalar": ("1", 0, (), ()),
        },
        {"0": data, "1": np.array([7.5], np.float32)},
    )
    state = parse_legacy(blob)
    assert list(state) == ["a", "a_t", "tail", "scalar"]
    np.testing.assert_array_equal(state["a"], data.reshape(3, 4))
    np.testing.assert_array_equal(state["a_t"], data.reshape(3, 4).T)
    np.testing.assert_array_equal(state["tail"], [10, 11])
    assert state["scalar"].shape == () and state["scalar"] == 7.5
    assert state["a"].flags.owndata  # a copy, not a view into the file's bytes


def test_a_tensor_past_its_storage_is_refused() -> None:
    blob = legacy_file({"a": ("0", 8, (3,), (2,))}, {"0": np.zeros(10, np.float32)})
    with pytest.raises(ModelError, match="past its storage"):
        parse_legacy(blob)


@pytest.mark.parametrize("cut", [5, 60, 200, -5])
def test_truncated_file_is_a_model_error(cut: int) -> None:
    blob = legacy_file({"a": ("0", 0, (4,), (1,))}, {"0": np.ones(4, np.float32)})
    with pytest.raises(ModelError):
        parse_legacy(blob[:cut])


def test_not_a_weights_file() -> None:
    with pytest.raises(ModelError, match="magic"):
        parse_legacy(pickle.dumps(123, protocol=2) + b"rest")
    with pytest.raises(ModelError):
        parse_legacy(b"PK\x03\x04 a zip-format torch file is not read")


@pytest.mark.parametrize(
    "global_", [b"cos\nsystem\n", b"cposix\nsystem\n", b"cbuiltins\neval\n", b"ctorch\nload\n"]
)
def test_refuses_any_other_global_without_calling_it(global_: bytes, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    crafted = b"\x80\x02" + global_ + b"X" + len(command).to_bytes(4, "little") + command
    crafted += b"\x85R."  # TUPLE1, REDUCE: would call the global with the command
    for blob in (crafted, HEADER + crafted):
        with pytest.raises(ModelError, match="refuses"):
            parse_legacy(blob)
    assert not marker.exists()


def test_the_installed_weights_parse_and_match_their_hash() -> None:
    blob = weights_path().read_bytes()
    check_sha256(blob, WEIGHTS_SHA256)
    state = parse_legacy(blob)
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert state["_fc.weight"].shape == (1000, 1280)
    assert np.isfinite(state["_fc.weight"]).all()


def test_sha256_mismatch_is_a_model_error() -> None:
    check_sha256(b"abc", hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(ModelError, match="sha256"):
        check_sha256(b"abd", hashlib.sha256(b"abc").hexdigest())
