"""Each quirk of the real files, numbered as the tests are, on the recorded files (data/de/)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from gateway.model.query import Condition
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.parse import read_table
from tests.resolvers.wahldaten_csv.conftest import SourceFactory
from tests.resolvers.wahldaten_csv.model import DATA_DIR
from tests.resolvers.wahldaten_csv.queries import ask, notices
from tests.resolvers.wahldaten_csv.raw import election, elections, header, rows

RECORDED = sorted(DATA_DIR.rglob("*.csv"))


@pytest.fixture
async def local(make_source: SourceFactory) -> WahldatenSource:
    return await make_source(directory=str(DATA_DIR))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name[:60])
def test_1_every_recorded_file_reads_as_the_stdlib_reads_it(path: Path) -> None:
    # §6.1: no recorded field is quoted; the parser must agree with csv on all of them anyway.
    data = path.read_bytes()
    table = read_table(data, "f.csv")
    reference = [
        r for r in csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";") if r
    ]
    assert [list(table.header), *[list(r.values) for r in table.records]] == reference
    assert b'"' not in data


def test_2_crlf_files_read_like_lf_files() -> None:
    (crlf,) = election("hagen-btw2025").folder.glob("*_Wahlergebnisse_*")
    data = crlf.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n")
    table = read_table(data, crlf.name)
    assert not any("\r" in v for r in table.records for v in r.values)
    assert table.header[-1] == "F18"
    assert len(table.records) == len(rows(crlf))


def test_3_trailing_blank_line_and_bom() -> None:
    (path,) = election("goettingen-eu-rad-2024").folder.glob("*_Wahlergebnisse_*")
    data = path.read_bytes()
    assert data.endswith(b"\n\n")
    table = read_table(data, path.name)
    assert len(table.records) == len(rows(path)) == data.count(b"\n") - 2
    assert table.warnings == ()
    with_bom = read_table(b"\xef\xbb\xbf" + data, path.name)
    assert with_bom.header == table.header
    assert with_bom.records == table.records


async def test_4_a_header_only_file_gives_no_rows_and_no_error(local: WahldatenSource) -> None:
    raw = election("karlsruhe-ltw2021")
    path = raw.file("Kandidaten")
    assert path is not None
    assert rows(path) == []
    assert len(header(path)) == 16
    page = await ask(local, "Kandidat", wahl=raw.wahl)
    assert page.rows == []
    assert page.total == 0


async def test_5_empty_timestamps_and_timestamps_with_milliseconds(local: WahldatenSource) -> None:
    wiesbaden = election("wiesbaden-citybahn")
    page = await ask(local, "Wahlergebnis", wahl=wiesbaden.wahl)
    assert len(page.rows) == len(wiesbaden.rows("Wahlergebnisse"))
    assert {r["zeitstempel_erfassung"] for r in page.rows} == {None}

    hagen = election("hagen-kommunal2025")
    page = await ask(local, "Wahlergebnis", wahl=hagen.wahl)
    expected = {}
    for row in hagen.rows("Wahlergebnisse"):
        day, time, millis = row["zeitstempel-erfassung"].split(" ")
        d, m, y = day.split(".")
        expected[row["bezirk-nr"]] = f"{y}-{m}-{d}T{time}.{millis}"
    assert {r["bezirk_nr"]: r["zeitstempel_erfassung"] for r in page.rows} == expected


async def test_6_empty_counts_are_null_not_zero(local: WahldatenSource) -> None:
    raw = election("karlsruhe-ltw2021")
    empty = sum(
        1
        for row in raw.rows("Wahlergebnisse")
        for k, v in row.items()
        if k[0] == "D" and k != "D" and v == ""
    )
    assert empty > 0
    page = await ask(local, "Stimme", wahl=raw.wahl)
    assert sum(1 for r in page.rows if r["anzahl"] is None) == empty
    assert all(r["anzahl"] is None or r["anzahl"] >= 0 for r in page.rows)


async def test_7_district_numbers_stay_strings(local: WahldatenSource) -> None:
    for raw in elections():
        page = await ask(local, "Wahlgebiet", wahl=raw.wahl)
        assert [r["bezirk_nr"] for r in page.rows] == [
            r["bezirk-nr"] for r in raw.rows("Wahlgebietseinteilungen")
        ]
        results = await ask(local, "Wahlergebnis", wahl=raw.wahl)
        assert [r["bezirk_nr"] for r in results.rows] == [
            r["bezirk-nr"] for r in raw.rows("Wahlergebnisse")
        ]
    kall = await ask(local, "Wahlgebiet", wahl=election("kall-kommunal2020").wahl)
    assert kall.rows[0]["bezirk_nr"] == "01.0"
    assert kall.rows[0]["wahl_behoerde_gs"] == "05366024"


async def test_8_ags_that_differs_between_datasets_is_a_warning(local: WahldatenSource) -> None:
    raw = election("kall-kommunal2020")
    candidates = raw.rows("Kandidaten")
    assert {r["wahl-behoerde-gs"] for r in candidates} == {"05366004"}
    page = await ask(local, "Kandidat", wahl=raw.wahl)
    assert len(page.rows) == len(candidates)
    assert {r["wahl_behoerde_gs"] for r in page.rows} == {"05366004"}
    (warning,) = notices(page, "AGS_MISMATCH")
    path = raw.file("Kandidaten")
    assert path is not None
    assert (warning["file"], warning["line"], warning["count"]) == (path.name, 2, len(candidates))


async def test_8_placeholders_are_warnings_and_the_rest_is_served(local: WahldatenSource) -> None:
    raw = election("hagen-kommunal2025")
    districts = raw.rows("Wahlgebietseinteilungen")
    marked = [i for i, r in enumerate(districts) if r["kandidat-gebiet-nr"].startswith("???")]
    assert marked
    page = await ask(local, "Wahlgebiet", wahl=raw.wahl)
    assert len(page.rows) == len(districts)
    assert all(page.rows[i]["kandidat_gebiet_nr"] is None for i in marked)
    assert all(page.rows[i]["kandidat_gebiet_id"] is None for i in marked)
    assert [r["bezirk_name"] for r in page.rows] == [r["bezirk-name"] for r in districts]
    found = {n["column"]: n for n in notices(page, "PLACEHOLDER")}
    assert found["kandidat-gebiet-nr"]["line"] == marked[0] + 2
    assert found["kandidat-gebiet-nr"]["count"] == len(marked)
    assert "kandidat-gebiet-bezeichnung" in found


async def test_9_full_names_in_the_surname_column_are_kept(local: WahldatenSource) -> None:
    raw = election("hagen-btw2025")
    page = await ask(local, "Kandidat", wahl=raw.wahl)
    names = {r["kandidat_name"]: r["kandidat_vorname"] for r in page.rows}
    assert names["Dr. Thomas Jalili Tanha"] is None
    assert set(names) == {r["kandidat-name"] for r in raw.rows("Kandidaten")}


async def test_10_empty_long_names_and_typographic_quotes(local: WahldatenSource) -> None:
    karlsruhe = election("karlsruhe-eu-gemeinderat-2024")
    page = await ask(local, "Stimmzettel", wahl=karlsruhe.wahl)
    assert {r["partei_langname"] for r in page.rows} == {None}
    goettingen = election("goettingen-eu-rad-2024")
    assert "„" in goettingen.wahl
    page = await ask(local, "Wahlparameter", wahl=goettingen.wahl)
    assert page.rows[0]["wahl_name"] == "„Radentscheid I - Allgemeine Strategien“"


async def test_11_elections_on_one_day_stay_apart(
    make_source: SourceFactory, tmp_path: Path
) -> None:
    # Two elections of one municipality on one day: Kall's files again as a mayoral election.
    folder = tmp_path / "kall"
    folder.mkdir()
    source_folder = election("kall-kommunal2020").folder
    for path in source_folder.glob("*.csv"):
        folder.joinpath(path.name).write_bytes(path.read_bytes())
        mayor = path.name.replace("Ratswahl-NRW", "Buergermeisterwahl-NRW")
        text = path.read_text(encoding="utf-8").replace("Ratswahl NRW", "Bürgermeisterwahl NRW")
        folder.joinpath(mayor).write_text(text, encoding="utf-8")
    source = await make_source(directory=str(folder))
    params = await ask(source, "Wahlparameter")
    wahlen = sorted(r["wahl"] for r in params.rows)
    assert wahlen == [
        "05366024_2020-09-13_Bürgermeisterwahl NRW",
        "05366024_2020-09-13_Ratswahl NRW",
    ]
    district = (await ask(source, "Wahlgebiet", wahl=wahlen[0])).rows[0]
    results = await ask(
        source, "Wahlergebnis", Condition("bezirk_id", "in", [district["bezirk_id"]])
    )
    assert [(r["wahl"], r["bezirk_nr"]) for r in results.rows] == [
        (wahlen[0], district["bezirk_nr"])
    ]


async def test_12_results_are_snapshots_with_their_own_timestamps(local: WahldatenSource) -> None:
    raw = election("duesseldorf-kommunal2020")
    page = await ask(local, "Wahlergebnis", wahl=raw.wahl)
    expected = {}
    for row in raw.rows("Wahlergebnisse"):
        day, time = row["zeitstempel-erfassung"].split(" ")
        d, m, y = day.split(".")
        expected[row["bezirk-nr"]] = f"{y}-{m}-{d}T{time}"
    assert len(set(expected.values())) > 1
    assert {r["bezirk_nr"]: r["zeitstempel_erfassung"] for r in page.rows} == expected
