"""Changes as they travel between processes."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.sources.changes import Change


def test_a_change_survives_the_channel() -> None:
    change = Change("VALG", "Valgresultat", ({"Fil": "a.json", "Stemmer": 2**40},), ("root/a",))
    back, origin = Change.decode(change.encode("process-1"))
    assert (back, origin) == (change, "process-1")


def test_dates_travel_as_iso_text_and_huge_integers_survive() -> None:
    change = Change("FT", "Sag", ({"dato": dt.date(2026, 3, 24), "id": 2**70 + 1},), ())
    back, _ = Change.decode(change.encode())
    assert back.rows == ({"dato": "2026-03-24", "id": 2**70 + 1},)


@pytest.mark.parametrize(
    "junk",
    [
        b"[]",
        b'{"register": "CZ", "entity": "DAVKA", "rows": [1], "upstream": []}',
        b'{"register": "CZ", "entity": "DAVKA", "rows": [], "upstream": "x"}',
        b'{"register": "CZ", "rows": [], "upstream": [], "id": "1", "detectedAt": "t"}',
    ],
)
def test_anything_else_is_refused(junk: bytes) -> None:
    with pytest.raises(ValueError, match="change"):
        Change.decode(junk)
