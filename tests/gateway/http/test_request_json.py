"""Request bodies and JSON parameters read by orjson where it answers as the standard
library does, and by the standard library where it would not (the same values, the same
refusals)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway.http.protocol import RequestError, _json

BODIES: list[bytes] = [
    b'{"query": "{ a }", "variables": {"n": 1}}',
    b'{"n": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
    b'{"n": -9223372036854775809}',
    b'{"n": 9223372036854775807}',
    b'{"n": 18446744073709551615}',
    b'{"n": 1e400}',
    b'{"n": -1e400}',
    b'{"n": NaN}',
    b'{"n": Infinity}',
    b'{"s": "\\ud800"}',  # a lone surrogate
    b'{"s": "\\u00e6\\u00f8\\u00e5", "t": "\xc3\xa6"}',
    b'{"a": 1, "a": 2}',
    b'{"n": 0.1, "m": 1.0, "k": -0, "e": 5e-324}',
    b'\xef\xbb\xbf{"bom": true}',
    '{"utf16": 1}'.encode("utf-16"),
    b'{"n": 0.000000000000000000001}',
    b"[" * 200 + b"]" * 200,
]

REFUSED: list[bytes] = [
    b"[" * 2000 + b"]" * 2000,
    b"{",
    b'{"a": }',
    b"\xff\xfe\x00",
    b"[" * 100_000,
    b'{"a": 1} x',
    b"",
]


def equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@pytest.mark.parametrize("body", BODIES)
def test_the_standard_librarys_values(body: bytes) -> None:
    assert equal(_json(body, "the body"), json.loads(body))
    text = body.decode("utf-8", "surrogatepass") if not body.startswith(b"\xff\xfe") else None
    if text is not None and not text.startswith("\ufeff"):
        assert equal(_json(text, "the parameter"), json.loads(text))


@pytest.mark.parametrize("body", REFUSED)
def test_the_standard_librarys_refusals(body: bytes) -> None:
    with pytest.raises(RequestError) as refused:
        _json(body, "the body")
    assert "is not valid JSON" in str(refused.value.args or refused.value)
