"""File-name grammars and the choice of the newest version of each dataset."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from resolvers.wahldaten_csv.names import newest_versions, parse_file_name
from tests.resolvers.wahldaten_csv.model import DATA_DIR
from tests.resolvers.wahldaten_csv.raw import DATASETS

RECORDED = sorted(p.name for p in DATA_DIR.rglob("*.csv"))


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_name_parses(name: str) -> None:
    parsed = parse_file_name(name)
    assert parsed is not None
    (dataset,) = [d for d in DATASETS if f"_{d}_" in name]
    assert parsed.dataset == dataset
    assert parsed.ags == name[:8]
    version = re.search(r"_V(\d)-(\d)_", name)
    assert version is not None
    assert parsed.format_version == f"{version.group(1)}.{version.group(2)}"
    assert parsed.stamp is not None


def test_the_two_grammars() -> None:
    compact = parse_file_name(
        "05366024_20200913_Ratswahl-NRW_Wahlergebnisse_V0-2_20200930T111111.csv"
    )
    german = parse_file_name(
        "05914000_14.09.2025_Wahl der Vertretung der Gemeinde (Rat der Stadt Hagen)"
        "_Wahlergebnisse_V0-3_15.09.2025 090313 809.csv"
    )
    assert compact is not None
    assert german is not None
    assert (compact.day, compact.stamp) == ("2020-09-13", dt.datetime(2020, 9, 30, 11, 11, 11))
    assert (german.day, german.stamp) == ("2025-09-14", dt.datetime(2025, 9, 15, 9, 3, 13, 809000))
    assert german.election == "Wahl der Vertretung der Gemeinde (Rat der Stadt Hagen)"


def test_a_sequence_suffix_and_names_that_are_no_dataset() -> None:
    suffixed = parse_file_name(
        "05914000_23.02.2025_Wahl zum Deutschen Bundestag_Wahlergebnisse"
        "_V0-3_23.02.2025 163422 780_1.csv"
    )
    assert suffixed is not None
    assert suffixed.sequence == 1
    assert parse_file_name("Open-Data-Wahl123.csv") is None
    assert parse_file_name("05366024_20200913_Ratswahl-NRW_Wahlergebnisse.txt") is None


def test_one_publication_groups_across_spellings_of_its_name() -> None:
    a = parse_file_name("05366024_20200913_Ratswahl-NRW_Stimmzettel_V0-2_20200930T111111.csv")
    b = parse_file_name(
        "05366024_13.09.2020_Ratswahl NRW_Stimmzettel_V0-3_01.10.2020 080000 000.csv"
    )
    assert a is not None
    assert b is not None
    assert a.group == b.group


def test_the_newest_version_of_each_dataset_wins() -> None:
    names = [
        "05366024_20200913_Ratswahl-NRW_Wahlergebnisse_V0-2_20200913T183000.csv",
        "05366024_20200913_Ratswahl-NRW_Wahlergebnisse_V0-2_20200913T203000.csv",
        "05366024_20200913_Ratswahl-NRW_Wahlergebnisse_V0-2_20200913T193000.csv",
        "05366024_20200913_Ratswahl-NRW_Wahlergebnisse_V0-2_20200913T203000_2.csv",
        "05366024_20200913_Ratswahl-NRW_Stimmzettel_V0-2_20200901T000000.csv",
        "05366024_13.09.2020_Ratswahl NRW_Stimmzettel_V0-3_02.09.2020 000000 001.csv",
        "05366024_20200913_Buergermeisterwahl-NRW_Wahlergebnisse_V0-2_20200913T183000.csv",
    ]
    parsed = [parse_file_name(n) for n in names]
    newest = newest_versions(p for p in parsed if p is not None)
    chosen = sorted(name.name for name in newest.values())
    assert chosen == sorted([names[3], names[5], names[6]])
