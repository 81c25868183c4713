"""Every export of every shipped register, read by pandas, pyarrow and polars from its URL.

One real uvicorn server serves the gateway over all the replicas: FT (OData), VALG (SFTP),
CZ and CZPREZ (volby.cz XML) and DE (Offene Wahldaten CSV). For each entity ``/catalog.json``
offers a download of, the test reads

- the Parquet file with ``polars.read_parquet(url)``, ``pandas.read_parquet(url)`` and
  ``pyarrow.parquet.read_table`` of the fetched body,
- the CSV with ``pandas.read_csv(url, **hints)`` (the hints are the ``dls:pandas`` arguments
  of the CSV's CSVW metadata) and ``polars.read_csv(url, schema_overrides=…)`` with the CSVW
  column types (polars' own guess from the first rows cannot know that ``0101`` and ``01.0``
  are both district codes),

and checks the row count against the export's ``X-Total-Count``, the columns against the
catalogue's fields the caller may read (anonymous: level 0), the Parquet types (date-times
zone-aware UTC timestamps, ints as ints) and the CSV types in pandas: what the CSVW metadata
calls a string stays a string (codes keep their leading zeros), integers stay integers. The
values are compared with the NDJSON export of the same URL (the gateway's own JSON encoding).

Large entities are narrowed with a ``where`` on a field their source narrows its reads by
(:data:`WHERE`), so the module runs in well under two minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from gateway.http.app import create_app
from gateway.http.config import Settings
from gateway.http.server import RunningServer, serve_asgi
from resolvers.odata.replica.data import MISSING_SETS
from tests.fixtures import running_replica
from tests.resolvers.wahldaten_csv import raw as de_raw
from tests.support import register_subset

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

SHIPPED = ("FT", "VALG", "CZ", "CZPREZ", "DE")

# One municipality (Frederiksberg), and two of its polling areas (Valgresultat's identity:
# one file each): VALG reads only their files.
_KOMMUNE = {"Kommunekode": {"eq": 147}}
_AREAS = {"AfstemningsomraadeDagiId": {"in": [701726, 701758]}}

# (register, exportName) -> the where keeping a big export small (what its source narrows on).
WHERE: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("FT", "Stemme"): {"afstemningid": {"lte": 80}},
    ("FT", "Aktoer"): {"id": {"lte": 400}},
    ("VALG", "Valgdeltagelse"): _KOMMUNE,
    ("VALG", "Valgdeltagelse_Valgdeltagelse"): _KOMMUNE,
    ("VALG", "Valgresultat_UdenforParti"): _KOMMUNE,
    **{
        ("VALG", name): _AREAS
        for name in (
            "Valgresultat",
            "Valgresultat_IndenforParti",
            "Valgresultat_IndenforParti_Kandidater",
            "Valgresultat_Kandidatlister",
            "Valgresultat_Kandidatlister_Kandidater",
            "Valgresultat_UgyldigeBrevstemmerAarsager",
            "Valgresultat_UgyldigeFremmoedteStemmerAarsager",
        )
    },
    # One election (Göttingen's cycling referendum): DE reads only that election's files.
    ("DE", "Stimme"): {"wahl": {"eq": de_raw.election("goettingen-eu-rad-2024").wahl}},
}

# What each GraphQL scalar is in a Parquet export, and in pandas reading the CSV with hints.
ARROW = {
    "String": pa.string(),
    "Int": pa.int32(),
    "Long": pa.int64(),
    "Float": pa.float64(),
    "Boolean": pa.bool_(),
    "Date": pa.date32(),
    "DateTime": pa.timestamp("us", tz="UTC"),
}
POLARS: dict[str, pl.DataType | type[pl.DataType]] = {
    "String": pl.String,
    "Int": pl.Int32,
    "Long": pl.Int64,
    "Float": pl.Float64,
    "Boolean": pl.Boolean,
    "Date": pl.Date,
    "DateTime": pl.Datetime("us", "UTC"),
}
PANDAS_CSV = {
    "String": "string",
    "Int": "Int32",
    "Long": "Int64",
    "Float": "Float64",
    "Boolean": "boolean",
    # Served as ISO 8601 text: the hints keep it text (no guessing of formats or zones).
    "Date": "string",
    "DateTime": "string",
}
# The CSVW datatypes as polars types (dates and date-times read as the served text).
POLARS_CSV = {**POLARS, "Date": pl.String, "DateTime": pl.String}
# Registers whose codes have leading zeros (DE: Gemeindeschlüssel, district numbers "0101";
# CZPREZ: precinct numbers).
LEADING_ZEROS = ("CZPREZ", "DE")
# Columns whose value is the moment of the gateway's last upstream check (volby.cz progress:
# when the newest batch was looked for): each export may see a later one. Typed, not compared.
VOLATILE = frozenset({"DATUM_CAS_KONTROLY"})
CSVW_TEXT = {"String": "string", "Date": "string", "DateTime": "string"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with (
        running_replica("odata") as ft,
        running_replica("valg") as valg,
        running_replica("volby") as volby,
        running_replica("wahldaten") as de,
    ):
        sources: dict[str, dict[str, Any]] = {"FT": {"url": ft.url, "rate": 0}}
        for replica in (valg, volby, de):
            for name, options in replica.overrides.items():
                sources[name] = {"rate": 0, **options}
        with register_subset(*SHIPPED) as registers:
            settings = Settings(registers_dir=registers, sources=sources, rate_limit=None)
            folder = tmp_path_factory.mktemp("exports")
            settings = replace(settings, exports=replace(settings.exports, folder=folder))
            running = await serve_asgi(create_app(settings))
            try:
                yield running
            finally:
                await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def catalogue(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/catalog.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _query(where: Mapping[str, Any] | None) -> str:
    return f"?where={quote(json.dumps(where, separators=(',', ':')), safe='')}" if where else ""


def _plain(value: Any) -> Any:
    """A value read by pandas as a plain Python value (``<NA>`` as None)."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _moment(value: Any) -> dt.datetime | None:
    """An NDJSON date-time as the aware moment it names (UTC for a wall-clock value)."""
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else None


async def _check_export(
    server: RunningServer,
    http: httpx.AsyncClient,
    register: str,
    entity: Mapping[str, Any],
) -> tuple[int, int]:
    """Check one entity's exports; its rows and how many text values had leading zeros."""
    name = entity["exportName"]
    download = entity["downloads"][-1]  # the newest RelationVersion
    query = _query(WHERE.get((register, name)))
    fields = [f for f in entity["fields"] if f["accessible"]]
    names = [f["name"] for f in fields]
    types = {f["name"]: f["type"] for f in fields}
    label = f"{register}/{name}"

    # -- NDJSON: the rows as the gateway encodes them, and the count -------------------
    ndjson = await http.get(download["ndjson"] + query)
    if register == "FT" and entity["name"] in MISSING_SETS:
        # Listed in FT's $metadata, answered 404 by the real service (and the replica).
        assert ndjson.status_code == 502, (label, ndjson.text)
        assert ndjson.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        return 0, 0
    assert ndjson.status_code == 200, (label, ndjson.text)
    rows = [json.loads(line) for line in ndjson.content.splitlines()]
    total = int(ndjson.headers["x-total-count"])
    assert len(rows) == total, label
    assert all(list(r) == names for r in rows), label

    # -- Parquet: the body through pyarrow, the URL through polars and pandas ----------
    url = server.url + download["parquet"] + query
    body = await http.get(download["parquet"] + query)
    assert body.status_code == 200, (label, body.text)
    assert int(body.headers["x-total-count"]) == total, label
    table = pq.read_table(pa.BufferReader(body.content))
    assert table.num_rows == total, label
    assert table.column_names == names, label
    for f in fields:
        assert table.schema.field(f["name"]).type == ARROW[f["type"]], (label, f)
    for column in names:
        got = table.column(column).to_pylist()
        if column in VOLATILE:
            continue
        if types[column] == "String" or types[column] in ("Int", "Long", "Boolean"):
            assert got == [r[column] for r in rows], (label, column)
        elif types[column] == "Date":
            assert [None if v is None else v.isoformat() for v in got] == [
                r[column] for r in rows
            ], (label, column)
        elif types[column] == "DateTime":
            # A value served with an offset is that moment; wall clocks are the register's.
            for value, row in zip(got, rows, strict=True):
                assert (value is None) == (row[column] is None), (label, column)
                moment = _moment(row[column])
                if moment is not None:
                    assert value == moment, (label, column)

    polars_frame = await asyncio.to_thread(pl.read_parquet, url)
    assert polars_frame.height == total, label
    assert polars_frame.columns == names, label
    assert {c: polars_frame.schema[c] for c in names} == {c: POLARS[types[c]] for c in names}, label

    pandas_frame = await asyncio.to_thread(pd.read_parquet, url)
    assert len(pandas_frame) == total, label
    assert list(pandas_frame.columns) == names, label
    for column in names:
        dtype = pandas_frame[column].dtype
        if types[column] == "DateTime":
            assert isinstance(dtype, pd.DatetimeTZDtype), (label, column, dtype)
            assert str(dtype.tz) == "UTC", (label, column)
        elif types[column] in ("Int", "Long"):
            # Integers stay integers: int32/int64, or a nullable float only if nulls occur.
            nulls = any(r[column] is None for r in rows)
            assert pd.api.types.is_integer_dtype(dtype) or nulls, (label, column, dtype)
            if column in VOLATILE:
                continue
            assert [_plain(v) for v in pandas_frame[column]] == [r[column] for r in rows]
        elif types[column] == "String" and column not in VOLATILE:
            assert [_plain(v) for v in pandas_frame[column]] == [r[column] for r in rows]

    # -- CSV: pandas with the CSVW hints, polars by itself ------------------------------
    metadata_response = await http.get(download["csvMetadata"] + query)
    assert metadata_response.status_code == 200, (label, metadata_response.text)
    metadata = metadata_response.json()
    columns = metadata["tableSchema"]["columns"]
    assert [c["name"] for c in columns] == names, label
    text = [c["name"] for c in columns if c["datatype"] == "string"]
    assert text == [c for c in names if types[c] == "String"], label
    hints = metadata["dls:pandas"]

    csv_url = server.url + download["csv"] + query
    frame = await asyncio.to_thread(pd.read_csv, csv_url, **hints)
    zeros = 0
    assert len(frame) == total, label
    assert list(frame.columns) == names, label
    for column in names:
        assert str(frame[column].dtype) == PANDAS_CSV[types[column]], (label, column)
        expected = [r[column] for r in rows]
        got = [_plain(v) for v in frame[column]]
        if column in VOLATILE:
            continue
        if types[column] == "String":
            zeros += sum(1 for v in got if isinstance(v, str) and v[:1] == "0" and v.isdigit())
        if types[column] in CSVW_TEXT:
            # pandas reads a quoted empty text as null too (csvw.py says so).
            assert got == [None if v == "" else v for v in expected], (label, column)
        elif types[column] != "Float":
            assert got == expected, (label, column)
        else:
            assert got == pytest.approx(expected), (label, column)

    # polars guesses types from the first rows, so a code column of digits ("0101", then
    # "01.0"; "9" then "9,10") fails to parse by itself: told the types the CSVW metadata
    # states, it reads every export, codes as served and "" apart from null.
    schema = {c: POLARS_CSV[types[c]] for c in names}
    polars_csv = await asyncio.to_thread(pl.read_csv, csv_url, schema_overrides=schema)
    assert polars_csv.height == total, label
    assert polars_csv.columns == names, label
    assert dict(polars_csv.schema) == schema, label
    for column in names:
        got = polars_csv[column].to_list()
        if column in VOLATILE:
            continue
        if types[column] == "Float":
            assert got == pytest.approx([r[column] for r in rows]), (label, column)
        else:
            assert got == [r[column] for r in rows], (label, column)
    return total, zeros


@pytest.mark.parametrize("register", SHIPPED)
async def test_every_export_reads_in_every_library(
    register: str,
    server: RunningServer,
    http: httpx.AsyncClient,
    catalogue: dict[str, Any],
) -> None:
    (entry,) = [r for r in catalogue["registers"] if r["name"] == register]
    entities = [e for e in entry["entities"] if e["downloads"]]
    # Every entity of the shipped registers is offered ("All" in each downloads annex).
    assert len(entities) == len(entry["entities"]) > 0
    read = zeros = 0
    for entity in entities:
        rows, codes = await _check_export(server, http, register, entity)
        if (register, entity["exportName"]) in WHERE:
            assert rows > 0, (register, entity["exportName"])  # a narrowing, not nothing
        read += 1
        zeros += codes
    assert read == len(entities)
    if register in LEADING_ZEROS:
        # The comparisons above met codes like "03159016" and "0101", kept as served.
        assert zeros > 0, register
