"""The canonical FT replica data read straight from the recorded files (independent code)."""

from __future__ import annotations

import csv
import sqlite3
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[3] / "data" / "ft"


def _na(value: str) -> str | None:
    return None if value == "NA" else value


@cache
def stemme() -> list[dict[str, Any]]:
    """Stemme rows (ints as ints, NA as None), by id."""
    with (DATA / "northatlantic_votes_raw.csv").open(encoding="utf-8", newline="") as handle:
        rows = [
            {
                "id": int(r["id"]),
                "typeid": None if _na(r["typeid"]) is None else int(r["typeid"]),
                "afstemningid": int(r["afstemningid"]),
                "aktoerid": int(r["aktørid"]),
                "opdateringsdato": r["opdateringsdato"],
            }
            for r in csv.DictReader(handle)
        ]
    return sorted(rows, key=lambda r: r["id"])


@cache
def afstemning() -> list[dict[str, Any]]:
    """Afstemning rows as text (NA as None), by id."""
    with (DATA / "ballot_info_raw.csv").open(encoding="utf-8", newline="") as handle:
        rows = [{k: _na(v) for k, v in r.items()} for r in csv.DictReader(handle)]
    return sorted(rows, key=lambda r: int(r["id"] or 0))


@cache
def aktoer() -> dict[int, dict[str, Any]]:
    """Aktør rows by id ('' as None, as the replica serves them)."""
    connection = sqlite3.connect(DATA / "ft.oda.Aktør.sqlite.db")
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM Aktør").fetchall()
    finally:
        connection.close()
    return {
        int(r["id"]): {k: (None if r[k] == "" else r[k]) for k in r.keys()}  # noqa: SIM118
        for r in rows
    }


@cache
def aktoertype() -> list[dict[str, Any]]:
    """Aktørtype rows (the SQLite dump's '' as None), by id."""
    uri = f"{(DATA / 'ft.oda.Aktørtype.sqlite.db').as_uri()}?mode=ro&immutable=1"
    connection = sqlite3.connect(uri, uri=True)
    try:
        records = connection.execute('SELECT id, type, opdateringsdato FROM "Aktørtype"')
        rows = [
            {"id": int(i), "type": t or None, "opdateringsdato": d or None} for i, t, d in records
        ]
    finally:
        connection.close()
    return sorted(rows, key=lambda r: r["id"])
