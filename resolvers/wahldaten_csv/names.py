"""File names of Offene Wahldaten files, and which version of a dataset is the newest.

Two grammars occur in real publications::

    05366024_20200913_Ratswahl-NRW_Wahlergebnisse_V0-2_20200930T111111.csv
    05914000_14.09.2025_Wahl der Vertretung …_Wahlergebnisse_V0-3_15.09.2025 090313 809.csv

that is ``<AGS>_<election day>_<election name>_<dataset>_V<major>-<minor>_<timestamp>.csv``,
the day as ``yyyymmdd`` or ``dd.mm.yyyy``, the timestamp as ``yyyymmddThhmmss`` or
``dd.mm.yyyy hhmmss mmm``, sometimes followed by ``_<n>``. The election name in a file name is
lossy (``/`` becomes ``-``, spaces may become ``-``), so it only groups the files of one
publication; who held which election is read from the files themselves.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "DATASETS",
    "ENTITY_DATASETS",
    "IDENTITY_ORDER",
    "FileName",
    "newest_versions",
    "parse_file_name",
]

# The five datasets of the standard, as they appear in file names.
DATASETS = (
    "Wahlparameter",
    "Wahlgebietseinteilungen",
    "Stimmzettel",
    "Kandidaten",
    "Wahlergebnisse",
)
# Entity (datamodel name) -> the datasets it reads, the first giving its rows.
ENTITY_DATASETS: dict[str, tuple[str, ...]] = {
    "Wahlparameter": ("Wahlparameter",),
    "Wahlgebiet": ("Wahlgebietseinteilungen",),
    "Stimmzettel": ("Stimmzettel",),
    "Kandidat": ("Kandidaten",),
    "Wahlergebnis": ("Wahlergebnisse",),
    "Stimme": ("Wahlergebnisse", "Wahlgebietseinteilungen", "Stimmzettel"),
}
# The datasets whose file names an election, in the order they are tried.
IDENTITY_ORDER = (
    "Wahlparameter",
    "Wahlgebietseinteilungen",
    "Stimmzettel",
    "Wahlergebnisse",
    "Kandidaten",
)

_NAME = re.compile(
    r"(?P<prefix>.+?)_(?P<dataset>" + "|".join(DATASETS) + r")"
    r"(?:_V(?P<major>\d+)-(?P<minor>\d+))?(?:_(?P<stamp>[^_]+?))?(?:_(?P<seq>\d+))?\.csv",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"(?P<ags>\d{8}|\d{12})_(?P<day>\d{8}|\d{2}\.\d{2}\.\d{4})_(?P<name>.+)")
_COMPACT_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})")
_GERMAN_STAMP = re.compile(r"(\d{2})\.(\d{2})\.(\d{4}) (\d{2})(\d{2})(\d{2})(?: (\d{1,3}))?")


@dataclass(frozen=True, slots=True)
class FileName:
    """What a file name says. ``group`` identifies the publication (one election's file set)."""

    name: str
    dataset: str
    group: str
    ags: str | None = None
    day: str | None = None  # ISO 8601
    election: str | None = None
    format_version: str | None = None  # "0.3"
    stamp: dt.datetime | None = None
    sequence: int = 0

    @property
    def order(self) -> tuple[dt.datetime, int, str]:
        """Sort key: the newest version sorts last; no timestamp sorts first."""
        return (self.stamp or dt.datetime.min, self.sequence, self.name)


@lru_cache(maxsize=4096)  # every query reads the listing's names again
def parse_file_name(name: str) -> FileName | None:
    """Parse a file name; None if it names none of the five datasets (not an OWD file)."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    dataset = next(d for d in DATASETS if d.lower() == match["dataset"].lower())
    prefix = match["prefix"]
    major, minor = match["major"], match["minor"]
    parts = _PREFIX.fullmatch(prefix)
    ags = day = election = None
    group = prefix
    if parts is not None:
        ags, election = parts["ags"], parts["name"]
        day = _day(parts["day"])
        group = f"{ags}_{day or parts['day']}_{_fold(election)}"
    return FileName(
        name=name,
        dataset=dataset,
        group=group,
        ags=ags,
        day=day,
        election=election,
        format_version=f"{int(major)}.{int(minor)}" if major is not None else None,
        stamp=_stamp(match["stamp"] or ""),
        sequence=int(match["seq"] or 0),
    )


def _fold(election: str) -> str:
    # Producers write the same name as "Ratswahl NRW", "Ratswahl-NRW" or "ratswahl_nrw".
    return re.sub(r"[^0-9a-zäöüß]+", "-", election.casefold()).strip("-")


def _day(text: str) -> str | None:
    try:
        if "." in text:
            return dt.datetime.strptime(text, "%d.%m.%Y").date().isoformat()
        return dt.datetime.strptime(text, "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _stamp(text: str) -> dt.datetime | None:
    compact = _COMPACT_STAMP.fullmatch(text)
    german = _GERMAN_STAMP.fullmatch(text)
    try:
        if compact:
            year, month, day, hour, minute, second = (int(p) for p in compact.groups())
            return dt.datetime(year, month, day, hour, minute, second)
        if german:
            day, month, year, hour, minute, second = (int(p) for p in german.groups()[:6])
            millis = int((german.group(7) or "0").ljust(3, "0"))
            return dt.datetime(year, month, day, hour, minute, second, millis * 1000)
    except ValueError:
        return None
    return None


def newest_versions(names: Iterable[FileName]) -> dict[tuple[str, str], FileName]:
    """Per (group, dataset) the newest file: latest timestamp, then highest ``_n`` suffix."""
    newest: dict[tuple[str, str], FileName] = {}
    for name in names:
        key = (name.group, name.dataset)
        seen = newest.get(key)
        if seen is None or name.order > seen.order:
            newest[key] = name
    return newest
