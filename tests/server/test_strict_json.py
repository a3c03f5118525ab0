"""Client JSON: UTF-8 only, no NaN, bounded nesting, no lone surrogates; valid pairs pass."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from server.strict_json import (
    MAX_DEPTH,
    JsonInputError,
    _deeper_than,
    _deeper_than_exact,
    _long_integer,
    check_text,
    loads,
    server_loads,
    valid_text,
)


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


_PIECES = ['[', ']', '{', '}', '"', '\\', '\\"', '\\\\', 'a', ' ', ',', ':', '1', '"[', ']"',
           '\\u00e9', '{"k":', '[1,', '"x"']


def test_the_depth_scan_agrees_with_the_exact_one_on_random_text() -> None:
    rng = random.Random(19)
    for _ in range(3000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 80)))
        for limit in (1, 2, 3, 5):
            assert _deeper_than(text, limit) == _deeper_than_exact(text, limit), (text, limit)
    balanced = "[" * 70 + "]" * 70
    assert _deeper_than(balanced, 64) and _deeper_than_exact(balanced, 64)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _reference(raw: str) -> Any:
    """What loads gave before orjson: the standard library's parse, or its error."""
    try:
        return ("ok", json.loads(raw, parse_constant=_no_constant))
    except (ValueError, RecursionError):
        return ("error",)


def test_orjson_and_the_standard_library_read_the_same_values() -> None:
    rng = random.Random(7)
    values = ['1', '-0', '0.1', '1e5', '2.5E-3', '1e400', '-1e400', '123456789012345678901',
              '18446744073709551616', '-9223372036854775809', '9007199254740993', '1.0000000000000002',
              '"a"', '"\\u00e9"', '"\\ud83d\\ude00"', 'true', 'null', '[]', '{}', '4.9e-324',
              '1.7976931348623157e308', '0.30000000000000004', '"\\t"', '1.5e-7']
    for _ in range(3000):
        items = [rng.choice(values) for _ in range(rng.randint(1, 4))]
        raw = "[" + ",".join(items) + "]"
        expected = _reference(raw)
        try:
            got = ("ok", loads(raw))
        except JsonInputError:
            got = ("error",)
        assert got == expected and repr(got) == repr(expected), raw
    for _ in range(500):  # random floats: orjson's and Python's readings are the same double
        x = rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30)
        assert loads(repr(x)) == float(repr(x))


def test_long_integers_are_found_and_hex_ids_are_not() -> None:
    assert _long_integer("[1, -12345678901234567890]") and _long_integer("12345678901234567890")
    assert _long_integer('{"a": 1234567890123456789}')
    # A 19-digit run inside a hex id or a fraction is no integer: orjson parses such frames.
    assert not _long_integer('{"id": "f1234567890123456789012", "x": 0.12345678901234567890}')
    assert not _long_integer('{"id": "1234567890123456789012ab"}')
    assert loads("[12345678901234567890123]") == [12345678901234567890123]  # exact, not a float


def _long_integer_by_runs(text: str) -> bool:
    """The rule, run by run: a maximal run of 19+ ASCII digits at the start of the text or after
    any character but a letter, a digit, a quote or a dot."""
    i = 0
    while i < len(text):
        if "0" <= text[i] <= "9":
            j = i
            while j < len(text) and "0" <= text[j] <= "9":
                j += 1
            before = text[i - 1] if i else " "
            if j - i >= 19 and not (before.isascii() and (before.isalnum() or before in '".')):
                return True
            i = j
        else:
            i += 1
    return False


def test_long_integer_agrees_with_the_rule_on_random_texts() -> None:
    rng = random.Random(19)
    # Non-ASCII too: an accented letter, an Arabic-Indic digit (neither is an ASCII digit).
    pieces = ["1", "7", "0", "a", "F", ".", '"', "-", " ", ",", "[", ":", "\u00e9", "\u0663",
              "12345678901234", "99999", "e", "\n"]
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert _long_integer(text) == _long_integer_by_runs(text), text
    ids = "".join(f'"{rng.getrandbits(128):032x}",' for _ in range(5000))
    assert _long_integer(ids) == _long_integer_by_runs(ids)


def test_server_loads_reads_what_the_standard_library_reads() -> None:
    """The database's JSON (an export's packed rows): orjson where it reads the same values."""
    for raw in ['[1, -12345678901234567890, "x"]', '{"a": 18446744073709551616}', "[1e400, -1e400]",
                '[0.1, "\u00e9", {"k": [true, null]}, 9223372036854775807]', "[]"]:
        got, expected = server_loads(raw), json.loads(raw)
        assert got == expected and repr(got) == repr(expected), raw
    # A long digit run that is no integer (an id) still takes orjson: same result either way.
    assert server_loads('["a1234567890123456789012"]') == ["a1234567890123456789012"]
