"""Cell conversion, the letter columns and the election identity of rows."""

from __future__ import annotations

import pytest

from gateway.model.datamodel import ScalarType
from gateway.model.filters import apply_in_memory
from gateway.model.query import Condition, Query, SortKey
from resolvers.wahldaten_csv.adapter import answer
from resolvers.wahldaten_csv.letters import LetterColumn, classify_columns, parse_letter_column
from resolvers.wahldaten_csv.parse import WarningLog, read_table
from resolvers.wahldaten_csv.rows import (
    Election,
    build_sheet,
    convert,
    election_key,
    election_prefix,
    entity_rows,
)
from tests.resolvers.wahldaten_csv.conftest import SourceFactory
from tests.resolvers.wahldaten_csv.model import DATA_DIR, datamodel


@pytest.mark.parametrize(
    ("raw", "kind", "value", "problem"),
    [
        ("", ScalarType.INT, None, False),
        (" 12 ", ScalarType.INT, 12, False),
        ("1.234", ScalarType.INT, None, True),
        ("???", ScalarType.STRING, None, True),
        ("???Name", ScalarType.STRING, None, True),
        ("0190", ScalarType.STRING, "0190", False),
        ("13.09.2020", ScalarType.DATE, "2020-09-13", False),
        ("13.13.2020", ScalarType.DATE, None, True),
        ("13.09.2020 20:39:18", ScalarType.DATETIME, "2020-09-13T20:39:18", False),
        ("2,5", ScalarType.FLOAT, 2.5, False),
        ("J", ScalarType.BOOLEAN, True, False),
        ("N", ScalarType.BOOLEAN, False, False),
        ("vielleicht", ScalarType.BOOLEAN, None, True),
    ],
)
def test_convert(raw: str, kind: ScalarType, value: object, problem: bool) -> None:
    got, why = convert(raw, kind)
    assert got == value
    assert (why is not None) == problem


def test_letter_columns() -> None:
    assert parse_letter_column("D12") == LetterColumn("D12", "D", 12)
    assert parse_letter_column("D3_7") == LetterColumn("D3_7", "D", 3, 7)
    assert parse_letter_column("F2") == LetterColumn("F2", "F", 2)
    assert parse_letter_column("D") is None
    assert parse_letter_column("A1") is None
    votes, unknown = classify_columns(
        ["bezirk-nr", "A1", "D", "D1", "F1", "D1_2", "E7", "extra"], {"bezirk-nr", "A1", "D"}
    )
    assert [v.column for v in votes] == ["D1", "F1", "D1_2"]
    assert unknown == ("E7", "extra")


def test_rows_carry_the_election_and_report_foreign_identity() -> None:
    entity = datamodel().entities["Wahlergebnis"]
    table = read_table(
        b"version;wahl-behoerde-gs;wahl-datum;wahl-name;bezirk-nr;bezirk-name;A;D1;X9;Q\n"
        b"0.3;05366024;13.09.2020;Ratswahl NRW;01.0;Eins;10;4;1;q\n"
        b"0.3;05366099;14.09.2020;Ratswahl NRW;02.0;Zwei;;5;2;q\n"
        b"0.3;05366024;13.09.2020;Ratswahl NRW;;Ohne;1;1;1;q\n",
        "f.csv",
    )
    sheet = build_sheet(table, entity, "Wahlergebnisse", ScalarType.INT)
    assert [letter.column for letter in sheet.letters] == ["D1"]
    assert sheet.votes == ((4,), (5,))
    election = Election("05366024", "2020-09-13", "Ratswahl NRW", "p.csv")
    log = WarningLog()
    rows = list(entity_rows(sheet, entity, election, log))
    assert [(r["wahl"], r["bezirk_id"], r["A"], r["zeile"]) for r in rows] == [
        ("05366024_2020-09-13_Ratswahl NRW", "05366024_2020-09-13_Ratswahl NRW|01.0", 10, 2),
        ("05366024_2020-09-13_Ratswahl NRW", "05366024_2020-09-13_Ratswahl NRW|02.0", None, 3),
    ]
    found = {(w.code, w.line, w.column) for w in (*sheet.warnings, *log.freeze())}
    assert found == {
        ("UNKNOWN_COLUMN", 1, "X9"),
        ("UNKNOWN_COLUMN", 1, "Q"),
        ("ROW_WITHOUT_KEY", 4, "bezirk-nr"),
        ("AGS_MISMATCH", 3, "wahl-behoerde-gs"),
        ("ELECTION_MISMATCH", 3, ""),
    }


@pytest.mark.parametrize(
    "order",
    [
        (),
        (SortKey("B1"),),
        (SortKey("B2", descending=True), SortKey("bezirk_nr")),
        (SortKey("zeitstempel_erfassung", descending=True),),
        (SortKey("wahl", descending=True), SortKey("A"), SortKey("bezirk_nr", descending=True)),
    ],
)
async def test_answer_orders_and_pages_like_the_gateway(
    make_source: SourceFactory, order: tuple[SortKey, ...]
) -> None:
    source = await make_source(directory=str(DATA_DIR))
    entity = source.register.datamodel.entities["Wahlergebnis"]
    rows = (await source.fetch(Query(entity=entity))).rows
    key = tuple(SortKey(k) for k in entity.key)
    where = Condition("A", "gt", 1000)
    for offset, limit in ((0, None), (5, 20), (1700, 50)):
        query = Query(entity=entity, where=where, order=order + key, offset=offset, limit=limit)
        expected = apply_in_memory(rows, query)
        got = answer(rows, query)
        assert (got.rows, got.total, got.has_more) == (
            expected.rows,
            expected.total,
            expected.has_more,
        )


def test_join_keys_stay_unambiguous() -> None:
    wahl = "05366024_2020-09-13_Wahl A|B"
    assert election_key(wahl, "01") == "05366024_2020-09-13_Wahl A\\|B|01"
    assert election_key(wahl, "01").startswith(election_prefix(wahl))
    assert not election_key("05366024_2020-09-13_Wahl A", "B|01").startswith(election_prefix(wahl))


def test_a_repeated_district_keeps_the_newest_report() -> None:
    entity = datamodel().entities["Wahlergebnis"]
    head = "wahl-behoerde-gs;wahl-datum;wahl-name;bezirk-nr;zeitstempel-erfassung;D;D1\n"
    lines = [
        "05366024;13.09.2020;R;01;13.09.2020 19:00:00;10;4\n",
        "05366024;13.09.2020;R;02;13.09.2020 19:05:00;20;8\n",
        "05366024;13.09.2020;R;01;13.09.2020 20:00:00;12;5\n",
        "05366024;13.09.2020;R;02;13.09.2020 18:00:00;19;7\n",
    ]
    table = read_table((head + "".join(lines)).encode(), "f.csv")
    sheet = build_sheet(table, entity, "Wahlergebnisse", ScalarType.INT)
    assert [(r["bezirk_nr"], r["D"]) for r in sheet.rows] == [("02", 20), ("01", 12)]
    assert sheet.votes == ((8,), (5,))
    (warning,) = [w for w in sheet.warnings if w.code == "REPEATED_ROW"]
    assert (warning.line, warning.count) == (4, 2)


def test_placeholders_in_identifying_columns_drop_the_row() -> None:
    entity = datamodel().entities["Stimmzettel"]
    table = read_table(
        b"wahl-behoerde-gs;wahl-datum;wahl-name;stimmzettel-gebiet-nr;stimmzettel-position\n"
        b"05366024;13.09.2020;R;???;1\n"
        b"05366024;13.09.2020;R;;1\n",
        "f.csv",
    )
    sheet = build_sheet(table, entity, "Stimmzettel")
    assert sheet.lines == (3,)
    codes = {(w.code, w.line) for w in sheet.warnings}
    assert codes == {("PLACEHOLDER", 2), ("ROW_WITHOUT_KEY", 2)}
    election = Election("05366024", "2020-09-13", "R", "p.csv")
    (row,) = entity_rows(sheet, entity, election, WarningLog())
    assert row["stimmzettel_id"] == "05366024_2020-09-13_R||1"
