"""Reading the recorded files with the standard library only, to compute expected answers."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from tests.resolvers.wahldaten_csv.model import DATA_DIR

DATASETS = (
    "Wahlparameter",
    "Wahlgebietseinteilungen",
    "Stimmzettel",
    "Kandidaten",
    "Wahlergebnisse",
)


def rows(path: Path) -> list[dict[str, str]]:
    """The data rows of a recorded file, by column name."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def header(path: Path) -> list[str]:
    """The header of a recorded file."""
    with path.open(encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle, delimiter=";"))


@dataclass(frozen=True)
class RawElection:
    """One recorded election folder."""

    folder: Path

    def file(self, dataset: str) -> Path | None:
        """The folder's file of ``dataset`` (each folder holds one version of each)."""
        found = [p for p in self.folder.glob("*.csv") if f"_{dataset}_" in p.name]
        assert len(found) <= 1
        return found[0] if found else None

    def rows(self, dataset: str) -> list[dict[str, str]]:
        """Rows of a dataset (none if the folder lacks it)."""
        path = self.file(dataset)
        return [] if path is None else rows(path)

    @property
    def wahl(self) -> str:
        """The identity: AGS, ISO day and name of the Wahlparameter file."""
        (row,) = self.rows("Wahlparameter")
        day, month, year = row["wahl-datum"].split(".")
        return f"{row['wahl-behoerde-gs']}_{year}-{month}-{day}_{row['wahl-name']}"


def elections() -> list[RawElection]:
    """All recorded elections."""
    return [RawElection(p) for p in sorted(DATA_DIR.iterdir()) if p.is_dir()]


def election(folder: str) -> RawElection:
    """A recorded election by folder name."""
    return RawElection(DATA_DIR / folder)


def party_sums(raw: RawElection, letter: str) -> dict[str, int]:
    """Votes per party (short name, else long name) summed over all districts, for the
    ``<letter><n>`` columns: position n of the ballot of each district's ballot area.
    """
    areas = {
        r["bezirk-nr"]: r["stimmzettel-gebiet-nr"] for r in raw.rows("Wahlgebietseinteilungen")
    }
    parties = {
        (r["stimmzettel-gebiet-nr"], r["stimmzettel-position"]): r["partei-kurzname"]
        or r["partei-langname"]
        for r in raw.rows("Stimmzettel")
    }
    sums: dict[str, int] = {}
    results = raw.rows("Wahlergebnisse")
    columns = [
        (column, match.group(1))
        for column in (results[0] if results else {})
        if (match := re.fullmatch(letter + r"(\d+)", column))
    ]
    for result in results:
        area = areas.get(result["bezirk-nr"], "")
        for column, position in columns:
            if result[column] != "":
                party = parties[(area, position)]
                sums[party] = sums.get(party, 0) + int(result[column])
    return sums
