"""The letter-coded counter columns of the Wahlergebnisse dataset.

The columns after the fixed part are the "Schnellmeldung" letters: ``A1 A2 A3 A`` (electorate),
``B B1 B2`` (voters), ``C`` (invalid), ``D`` (valid), ``E``, ``F``, and per ballot position ``Dn``
(votes for position n), ``Fn`` (second votes for position n, federal elections) and ``Dk_m``
(votes for candidate m of list k where voters may cumulate and split their votes). Which of them
a file has depends on the election: a Kall council file has 20 columns, a Karlsruhe one 600.
The fixed counters are fields of the result; each vote column becomes a row of its own.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = ["VOTE_LETTERS", "LetterColumn", "classify_columns", "parse_letter_column"]

# Letters whose numbered columns count votes per ballot position.
VOTE_LETTERS = frozenset("DF")

_LETTER = re.compile(r"(?P<letter>[A-Z])(?P<position>\d+)(?:_(?P<candidate>\d+))?")


@dataclass(frozen=True, slots=True)
class LetterColumn:
    """A vote column: ``D3`` is kennung D, position 3; ``D3_7`` adds candidate number 7."""

    column: str
    kennung: str
    position: int
    kandidatnummer: int | None = None


def parse_letter_column(name: str) -> LetterColumn | None:
    """The vote column ``name`` stands for, or None if it is no ``Dn``/``Fn``/``Dk_m`` column."""
    match = _LETTER.fullmatch(name)
    if match is None or match["letter"] not in VOTE_LETTERS:
        return None
    candidate = match["candidate"]
    return LetterColumn(
        column=name,
        kennung=match["letter"],
        position=int(match["position"]),
        kandidatnummer=None if candidate is None else int(candidate),
    )


def classify_columns(
    header: Iterable[str], known: Collection[str]
) -> tuple[tuple[LetterColumn, ...], tuple[str, ...]]:
    """Split a Wahlergebnisse header into vote columns and unknown columns.

    ``known`` are the columns that are fields of the result (the fixed part and the counters).
    """
    votes: list[LetterColumn] = []
    unknown: list[str] = []
    for name in header:
        if name in known:
            continue
        letter = parse_letter_column(name)
        if letter is None:
            unknown.append(name)
        else:
            votes.append(letter)
    return tuple(votes), tuple(unknown)
