"""The CSV rules of the standard on synthetic files: quoting, line breaks, encodings, damage."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings, strategies as st

from resolvers.wahldaten_csv.parse import (
    WarningLog,
    german_date,
    german_timestamp,
    parse_records,
    read_table,
)


def codes(table_warnings: tuple[object, ...]) -> list[tuple[str, int]]:
    return [(w.code, w.line) for w in table_warnings]  # type: ignore[attr-defined]


def test_quoted_field_with_separator_and_line_break() -> None:
    data = (
        b"version;wahl-name;bezirk-nr;bezirk-name\n"
        b'0.3;Ratswahl;0101;"Grundschule; Eingang\nHofseite"\n'
        b"0.3;Ratswahl;0102;Rathaus\n"
    )
    table = read_table(data, "f.csv")
    assert [r.values for r in table.records] == [
        ("0.3", "Ratswahl", "0101", "Grundschule; Eingang\nHofseite"),
        ("0.3", "Ratswahl", "0102", "Rathaus"),
    ]
    assert [r.line for r in table.records] == [2, 4]
    assert table.warnings == ()


def test_doubled_quotes_crlf_and_crlf_inside_a_field() -> None:
    data = b'a;b;c\r\n1;"Sagt ""Ja""";"x\r\ny"\r\n"";;\r\n'
    table = read_table(data, "f.csv")
    assert table.header == ("a", "b", "c")
    assert [r.values for r in table.records] == [("1", 'Sagt "Ja"', "x\r\ny"), ("", "", "")]


def test_bom_trailing_blank_lines_and_header_only() -> None:
    table = read_table(b"\xef\xbb\xbfa;b\n1;2\n\n\n", "f.csv")
    assert table.header == ("a", "b")
    assert [r.values for r in table.records] == [("1", "2")]
    assert codes(table.warnings) == [("BOM", 0)]
    empty = read_table(b"a;b\n", "f.csv")
    assert empty.header == ("a", "b")
    assert empty.records == ()


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ValueError, match="no header"):
        read_table(b"\n\n", "f.csv")


def test_rows_of_the_wrong_width_are_skipped_with_their_line() -> None:
    table = read_table(b"a;b;c\n1;2;3\n4;5\n6;7;8;9\n10;11;12\n", "f.csv")
    assert [r.values[0] for r in table.records] == ["1", "10"]
    assert codes(table.warnings) == [("ROW_WIDTH", 3)]
    assert table.warnings[0].count == 2


def test_an_unterminated_quote_loses_one_line_only() -> None:
    table = read_table(b'a;b\n"open;1\n2;3\n4;5\n', "f.csv")
    assert [r.values for r in table.records] == [("2", "3"), ("4", "5")]
    assert codes(table.warnings) == [("UNTERMINATED_QUOTE", 2)]


def test_a_cut_off_last_line_is_reported() -> None:
    table = read_table(b"a;b;c\n1;2;3\n4;5", "f.csv")
    assert [r.values for r in table.records] == [("1", "2", "3")]
    assert {w.code for w in table.warnings} == {"ROW_WIDTH", "NO_FINAL_LINE_BREAK"}
    assert all(w.line == 3 for w in table.warnings)


def test_windows_1252_is_read_with_a_warning() -> None:
    table = read_table("a;b\nDüsseldorf;Straße\n".encode("cp1252"), "f.csv")
    assert table.records[0].values == ("Düsseldorf", "Straße")
    assert codes(table.warnings) == [("NOT_UTF8", 0)]


def test_a_stray_quote_inside_a_field_is_kept() -> None:
    log = WarningLog()
    records = list(parse_records('a;b\n12" Zoll;"x"\n', "f.csv", log))
    assert records[1].values == ('12" Zoll', "x")
    assert [w.code for w in log.freeze()] == ["STRAY_QUOTE"]


def test_columns_are_found_by_name() -> None:
    first = read_table(b"wahl-name;bezirk-nr\nX;01\n", "a.csv")
    second = read_table(b"bezirk-nr;wahl-name\n01;X\n", "b.csv")
    for table in (first, second):
        assert table.get(table.records[0], "bezirk-nr") == "01"
        assert table.get(table.records[0], "wahl-name") == "X"
        assert table.get(table.records[0], "nothing") is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("13.09.2020", "2020-09-13"),
        ("1.2.2021", "2021-02-01"),
        ("2021-02-01", "2021-02-01"),
        ("31.02.2021", None),
        ("", None),
        ("13/09/2020", None),
    ],
)
def test_german_dates(text: str, iso: str | None) -> None:
    assert german_date(text) == iso


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("13.09.2020 20:39:18", "2020-09-13T20:39:18"),
        ("15.09.2025 09:03:13 809", "2025-09-15T09:03:13.809"),
        ("15.09.2025 09:03:13.8", "2025-09-15T09:03:13.800"),
        ("15.09.2025 09:03", "2025-09-15T09:03:00"),
        ("15.09.2025 25:03:13", None),
        ("15.09.2025", None),
        ("", None),
    ],
)
def test_german_timestamps(text: str, iso: str | None) -> None:
    assert german_timestamp(text) == iso


cells = st.text(alphabet=st.sampled_from(list('ab ;"\n\r\täöü„“?1')), max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(min_value=2, max_value=5),
    data=st.data(),
    terminator=st.sampled_from(["\n", "\r\n"]),
    quote_all=st.booleans(),
)
def test_whatever_an_rfc_4180_writer_writes_reads_back(
    width: int, data: st.DataObject, terminator: str, quote_all: bool
) -> None:
    header = [f"c{i}" for i in range(width)]
    body = data.draw(st.lists(st.lists(cells, min_size=width, max_size=width), max_size=6))
    # A row of empty fields would be a blank line, which the standard's readers skip.
    if terminator == "\n":
        # Python's writer leaves a bare CR unquoted when lines end in LF (RFC 4180 forbids it).
        body = [[cell.replace("\r", "") for cell in row] for row in body]
    body = [row for row in body if any(row)]
    out = io.StringIO(newline="")
    if quote_all:
        writer = csv.writer(out, delimiter=";", lineterminator=terminator, quoting=csv.QUOTE_ALL)
    else:
        writer = csv.writer(out, delimiter=";", lineterminator=terminator)
    writer.writerows([header, *body])
    table = read_table(out.getvalue().encode("utf-8"), "f.csv")
    assert [r.values for r in table.records] == [tuple(row) for row in body]
    assert table.warnings == ()
