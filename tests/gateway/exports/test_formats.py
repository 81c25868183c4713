"""The encoders: RFC 4180 CSV, NDJSON and Parquet row groups, read back by other code."""

from __future__ import annotations

import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

import pandas as pd  # type: ignore[import-untyped]
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from gateway.exports.formats import (
    ENCODING_ERRORS,
    CsvEncoder,
    NdjsonEncoder,
    ParquetEncoder,
    csv_field,
)
from gateway.model.datamodel import Field, ScalarType
from tests.gateway.exports.helpers import csv_rows

COLUMNS = [
    Field("id", "id", ScalarType.INT, nullable=False),
    Field("navn", "navn", ScalarType.STRING),
    Field("stor", "stor", ScalarType.LONG),
    Field("andel", "andel", ScalarType.FLOAT),
    Field("vedtaget", "vedtaget", ScalarType.BOOLEAN),
    Field("dag", "dag", ScalarType.DATE),
    Field("tid", "tidspunkt", ScalarType.DATETIME),
]

TEXTS = [
    "plain",
    "",
    "comma, inside",
    'a "quoted" word',
    "line\nbreak",
    "carriage\r\nreturn",
    "  spaces kept  ",
    "Søren Aabye Kierkegaard æøå ÆØÅ ü ß",
    '",\r\n"',
]


def _rows() -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "navn": text,
            "stor": 2**53 + i,
            "andel": 0.1 * i,
            "vedtaget": i % 2 == 0,
            "dag": "2015-06-18",
            "tid": "2015-06-18T09:30:00.123",
        }
        for i, text in enumerate(TEXTS)
    ] + [
        {"id": 99, "navn": None, "stor": None, "andel": None, "vedtaget": None},  # nulls, absent
    ]


def test_csv_round_trips_through_the_stdlib_reader() -> None:
    encoder = CsvEncoder(COLUMNS)
    rows = _rows()
    body = encoder.begin() + encoder.page(rows[:4]) + encoder.page([]) + encoder.page(rows[4:])
    body += encoder.end()
    records = csv_rows(body)
    assert records[0] == [f.name for f in COLUMNS]
    assert [r[1] for r in records[1:-1]] == TEXTS
    assert records[1] == [
        "0",
        "plain",
        str(2**53),
        "0.0",
        "true",
        "2015-06-18",
        "2015-06-18T09:30:00.123",
    ]
    assert records[-1] == ["99", "", "", "", "", "", ""]


def test_csv_line_ends_and_null_versus_empty_text() -> None:
    encoder = CsvEncoder(COLUMNS[:2])
    body = encoder.begin() + encoder.page([{"id": 1, "navn": ""}, {"id": 2, "navn": None}])
    # CRLF after every record; empty text is quoted, null is nothing at all.
    assert body == b'id,navn\r\n1,""\r\n2,\r\n'


def test_csv_fields() -> None:
    assert csv_field(None) == ""
    assert csv_field(False) == "false"
    assert csv_field(12) == "12"
    assert csv_field(1.5) == "1.5"
    assert csv_field(dt.date(2020, 2, 29)) == "2020-02-29"
    assert (
        csv_field(dt.datetime(2020, 2, 29, 1, 2, 3, tzinfo=dt.UTC)) == "2020-02-29T01:02:03+00:00"
    )
    assert csv_field('x"y') == '"x""y"'


def test_ndjson_is_one_object_per_row_with_every_column() -> None:
    encoder = NdjsonEncoder(COLUMNS)
    rows = _rows()
    rows[0]["tid"] = dt.datetime(2015, 6, 18, 9, 30)
    body = encoder.begin() + encoder.page(rows) + encoder.end()
    lines = body.split(b"\n")
    assert lines[-1] == b""
    decoded = [json.loads(line) for line in lines[:-1]]
    assert [d["navn"] for d in decoded[:-1]] == TEXTS
    assert decoded[0]["tid"] == "2015-06-18T09:30:00"
    assert decoded[0]["stor"] == 2**53  # no precision lost
    assert decoded[-1] == {f.name: None for f in COLUMNS} | {"id": 99}


def test_parquet_writes_a_row_group_per_page_as_it_goes() -> None:
    encoder = ParquetEncoder(COLUMNS, {"register": "FT", "entity": "Test"})
    rows = _rows()
    chunks = [
        encoder.begin(),
        encoder.page(rows[:3]),
        encoder.page(rows[3:7]),
        encoder.page(rows[7:]),
    ]
    # Each page's bytes are out before the next page is given.
    assert all(len(chunk) > 0 for chunk in chunks[1:])
    body = b"".join(chunks) + encoder.end()
    parquet = pq.ParquetFile(io.BytesIO(body))
    assert parquet.num_row_groups == 3
    assert [parquet.metadata.row_group(i).num_rows for i in range(3)] == [3, 4, len(rows) - 7]
    schema = parquet.schema_arrow
    types = {f.name: str(f.type) for f in schema}
    assert types == {
        "id": "int32",
        "navn": "string",
        "stor": "int64",
        "andel": "double",
        "vedtaget": "bool",
        "dag": "date32[day]",
        "tid": "timestamp[us, tz=UTC]",
    }
    assert schema.field("tid").metadata == {
        b"graphql_type": b"DateTime",
        b"source_name": b"tidspunkt",
    }
    assert schema.metadata[b"register"] == b"FT"
    table = parquet.read().to_pylist()
    assert [r["navn"] for r in table[:-1]] == TEXTS
    assert table[0]["dag"] == dt.date(2015, 6, 18)
    # No offset and no zone given: the wall-clock value is read as UTC.
    assert table[0]["tid"] == dt.datetime(2015, 6, 18, 9, 30, 0, 123000, tzinfo=dt.UTC)
    assert table[0]["stor"] == 2**53
    assert table[-1] == {f.name: None for f in COLUMNS} | {"id": 99}


def test_parquet_empty_export_is_a_valid_file() -> None:
    encoder = ParquetEncoder(COLUMNS)
    body = encoder.begin() + encoder.page([]) + encoder.end()
    assert pq.read_table(io.BytesIO(body)).num_rows == 0


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        # A wall-clock time in the register's zone: summer (+02:00) and winter (+01:00).
        ("2015-06-18T09:30:00", "Europe/Copenhagen", dt.datetime(2015, 6, 18, 7, 30)),
        ("2015-01-18T09:30:00", "Europe/Copenhagen", dt.datetime(2015, 1, 18, 8, 30)),
        # An offset wins over the zone; Z is UTC.
        ("2022-09-24T14:00:00+02:00", "Europe/Prague", dt.datetime(2022, 9, 24, 12, 0)),
        ("2026-03-24T09:14:37Z", "Europe/Copenhagen", dt.datetime(2026, 3, 24, 9, 14, 37)),
        ("0001-01-01T00:00:00Z", "UTC", dt.datetime(1, 1, 1)),
    ],
)
def test_parquet_date_times_are_utc_timestamps(
    value: str, zone: str, expected: dt.datetime
) -> None:
    encoder = ParquetEncoder([COLUMNS[6]], zone=ZoneInfo(zone))
    body = encoder.begin() + encoder.page([{"tid": value}, {"tid": None}]) + encoder.end()
    table = pq.read_table(io.BytesIO(body))
    assert str(table.schema.field("tid").type) == "timestamp[us, tz=UTC]"
    assert table.column("tid").to_pylist() == [expected.replace(tzinfo=dt.UTC), None]


@pytest.mark.parametrize(
    ("column", "value"),
    [(0, "not a number"), (0, 2**40), (5, "18.06.2015"), (6, "10:00:00"), (6, "yesterday")],
)
def test_parquet_refuses_values_it_cannot_hold(column: int, value: object) -> None:
    encoder = ParquetEncoder([COLUMNS[column]])
    with pytest.raises(ENCODING_ERRORS):
        encoder.page([{COLUMNS[column].name: value}])


def test_null_and_empty_text_are_told_apart_by_polars_and_pyarrow() -> None:
    encoder = CsvEncoder([Field("id", "id", ScalarType.INT), Field("t", "t", ScalarType.STRING)])
    body = encoder.begin() + encoder.page([{"id": 1, "t": None}, {"id": 2, "t": ""}])
    assert pl.read_csv(io.BytesIO(body))["t"].to_list() == [None, ""]
    options = pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    assert pacsv.read_csv(pa.BufferReader(body), convert_options=options)["t"].to_pylist() == [
        None,
        "",
    ]
    # pandas reads a quoted empty field as null too (documented in the CSVW module).
    assert pd.read_csv(io.BytesIO(body), dtype={"t": "string"})["t"].isna().tolist() == [True, True]
