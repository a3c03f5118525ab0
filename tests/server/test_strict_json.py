"""Client JSON: UTF-8 only, no NaN, bounded nesting, no lone surrogates; valid pairs pass."""

from __future__ import annotations

import json

import pytest

from server.strict_json import MAX_DEPTH, JsonInputError, check_text, loads, valid_text


def code_of(raw: bytes | str) -> str:
    with pytest.raises(JsonInputError) as info:
        loads(raw)
    return info.value.code


def test_valid_json_and_surrogate_pairs_pass() -> None:
    assert loads(b'{"a": [1, 2.5, "x"], "b": null}') == {"a": [1, 2.5, "x"], "b": None}
    assert loads('"\\ud83d\\ude00"') == "\U0001F600"  # an escaped pair is one character
    assert loads('"\\\\udc00"') == "\\udc00"  # an escaped backslash, not an escape
    assert loads(b"") is None
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(nested) is not None
    assert loads(json.dumps({"s": "[[[[" * 100})) == {"s": "[[[[" * 100}  # brackets in strings
    tricky = {"é[": 'a"[[[\\' * 100, "k": [["ü"]] * 50}  # escaped quotes and backslashes
    assert loads(json.dumps(tricky, ensure_ascii=False)) == tricky


@pytest.mark.parametrize("raw", [
    '"\\udc00"', '{"k": ["\\ud800"]}', '{"\\udfff": 1}', '"\\ud83d x"', '"\\ude00\\ud83d"',
    "\udc00", b'"\xed\xb0\x80"',  # an encoded surrogate: CPython would decode it with surrogatepass
])
def test_lone_surrogates_are_refused(raw: bytes | str) -> None:
    assert code_of(raw) in ("invalid_text", "bad_json")
    if isinstance(raw, str):
        assert code_of(raw) == "invalid_text"


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    assert code_of("[" * 5000 + "]" * 5000) == "too_deep"
    assert code_of('{"a":' * 5000 + "1" + "}" * 5000) == "too_deep"
    assert code_of("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) == "too_deep"
    assert code_of("[" * 100_000) == "too_deep"  # unbalanced too


def test_not_json_is_bad_json() -> None:
    for raw in (b"{not json", b"NaN", b"[Infinity]", '{"a": 1}'.encode("utf-16"), b"\xff"):
        assert code_of(raw) == "bad_json"


def test_check_text() -> None:
    assert check_text("ok ✓") == "ok ✓" and valid_text("ok")
    assert not valid_text("a\udc00")
    with pytest.raises(JsonInputError, match="name"):
        check_text("a\udc00", "name")
