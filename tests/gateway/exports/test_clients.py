"""Dataframe libraries reading exports straight from their URLs, as analysts do.

A real uvicorn server on 127.0.0.1 serves the gateway over the FT (OData) and DE (Offene
Wahldaten) replicas. pandas, polars and pyarrow read each URL themselves (polars asks for
``HEAD`` and byte ranges, pandas and pyarrow for the whole body); each call runs in a worker
thread, as the server shares this event loop. Expected values come from the recorded files
(tests/resolvers/odata/raw.py, the DE CSVs read with the stdlib), never from the gateway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import httpx
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from gateway.http.app import create_app
from gateway.http.auth import ApiKey, AuthSettings, hash_key
from gateway.http.config import Settings
from gateway.http.server import RunningServer, serve_asgi
from resolvers.odata.replica.server import ODataReplica
from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.gateway.exports.helpers import copy_ft, ft_moment, stemme
from tests.resolvers.odata import raw
from tests.resolvers.wahldaten_csv import raw as de_raw
from tests.support import REGISTERS

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "level-1-key-0123456789abcdefghij"
SECURITY = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [{"SecurityLevel": 1, "Entities": ["Aktør.biografi"]}],
}
FT_SOURCE = json.loads((REGISTERS / "FT" / "rc00001" / "Source.json").read_text("utf-8"))
# The votes of 80 divisions: a few hundred rows, several upstream pages.
VOTES = '{"afstemningid":{"lte":80}}'


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory,
    odata_replica: ODataReplica,
    module_wahldaten_replica: WahldatenDemo,
) -> AsyncIterator[RunningServer]:
    root = copy_ft(tmp_path_factory.mktemp("registers"), security=SECURITY)
    (root / "DE").symlink_to(REGISTERS / "DE")
    folder = tmp_path_factory.mktemp("exports")
    sources = {
        "FT": {"url": odata_replica.url, "rate": 0},
        **{
            name: {"rate": 0, **options}
            for name, options in module_wahldaten_replica.overrides.items()
        },
    }
    settings = Settings(
        registers_dir=root,
        sources=sources,
        auth=AuthSettings(keys=(ApiKey("analyst", 1, hash_key(KEY)),)),
        rate_limit=None,
    )
    from dataclasses import replace

    settings = replace(settings, exports=replace(settings.exports, folder=folder))
    running = await serve_asgi(create_app(settings))
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


def _url(server: RunningServer, path: str, where: str | None = None, **more: str) -> str:
    query = [f"where={quote(where)}"] if where else []
    query += [f"{k}={quote(v)}" for k, v in more.items()]
    return server.url + path + ("?" + "&".join(query) if query else "")


def _expected_votes() -> list[dict[str, Any]]:
    return [r for r in raw.stemme() if r["afstemningid"] <= 80]


# --- Parquet ---------------------------------------------------------------------------


async def test_polars_reads_parquet_from_the_url(server: RunningServer) -> None:
    url = _url(server, "/FT/v1/download/Stemme.parquet", VOTES)
    frame = await asyncio.to_thread(pl.read_parquet, url)
    expected = _expected_votes()
    assert frame.height == len(expected) > 100
    assert frame.schema["opdateringsdato"] == pl.Datetime("us", "UTC")
    assert frame.schema["id"] == pl.Int32
    assert frame["id"].to_list() == [r["id"] for r in expected]
    assert frame["opdateringsdato"].to_list() == [ft_moment(r["opdateringsdato"]) for r in expected]


async def test_pandas_reads_parquet_from_the_url(server: RunningServer) -> None:
    url = _url(server, "/FT/v1/download/Aktoer.parquet", '{"id":{"lte":40}}')
    frame = await asyncio.to_thread(pd.read_parquet, url)
    expected = [raw.aktoer()[i] for i in sorted(raw.aktoer()) if i <= 40]
    assert list(frame["id"]) == [r["id"] for r in expected]
    assert isinstance(frame["opdateringsdato"].dtype, pd.DatetimeTZDtype)
    assert str(frame["opdateringsdato"].dtype.tz) == "UTC"
    got = [None if pd.isna(v) else v.to_pydatetime() for v in frame["startdato"]]
    assert got == [ft_moment(r["startdato"]) for r in expected]
    # Nulls stay nulls (no level-1 column: biografi is absent, not blank).
    assert "biografi" not in frame.columns
    assert [None if pd.isna(v) else v for v in frame["fornavn"]] == [r["fornavn"] for r in expected]


async def test_pyarrow_reads_parquet_and_its_attribution(server: RunningServer) -> None:
    # pyarrow has no HTTP filesystem of its own: the body read with the stdlib, as users do.
    url = _url(server, "/FT/v1/download/Stemme.parquet", VOTES)

    def read() -> Any:
        with urllib.request.urlopen(url) as response:
            return pq.read_table(pa.BufferReader(response.read()))

    table = await asyncio.to_thread(read)
    assert table.schema.field("opdateringsdato").type == pa.timestamp("us", tz="UTC")
    assert table.column("aktoerid").to_pylist() == [r["aktoerid"] for r in _expected_votes()]
    metadata = table.schema.metadata
    assert metadata[b"attribution"].decode() == FT_SOURCE["attribution"]
    assert metadata[b"attribution_name"] == b"Folketinget"
    assert metadata[b"attribution_required"] == b"true"
    assert metadata[b"attribution_url"].decode() == FT_SOURCE["attributionUrl"]


# --- CSV -------------------------------------------------------------------------------


async def test_polars_reads_csv_from_the_url(server: RunningServer) -> None:
    url = _url(server, "/FT/v1/download/Stemme.csv", VOTES)
    frame = await asyncio.to_thread(pl.read_csv, url)
    expected = _expected_votes()
    assert frame["id"].to_list() == [r["id"] for r in expected]
    assert frame["opdateringsdato"].to_list() == [r["opdateringsdato"] for r in expected]


async def _csvw(http: httpx.AsyncClient, path: str, where: str) -> dict[str, Any]:
    """The CSVW metadata the CSV's Link header points at."""
    head = await http.head(path, params={"where": where})
    link = head.headers["link"]
    described = next(p for p in link.split(", ") if 'rel="describedby"' in p)
    target = described.split(">")[0].lstrip("<")
    assert "://" not in target
    assert "/" not in target
    assert target.endswith(f"?{head.request.url.query.decode()}")
    response = await http.get(path.rsplit("/", 1)[0] + "/" + target)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/csvw+json")
    document: dict[str, Any] = response.json()
    return document


async def test_csvw_metadata_types_the_columns_for_pandas(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    path = "/DE/v1/download/Wahlparameter.csv"
    metadata = await _csvw(http, path, "{}")
    columns = {c["name"]: c for c in metadata["tableSchema"]["columns"]}
    assert columns["wahl_behoerde_gs"]["datatype"] == "string"
    assert columns["zeile"]["datatype"] == "int"
    assert columns["wahl_datum"]["datatype"] == {"base": "date", "format": "yyyy-MM-dd"}
    # The CSV it describes, relative to the metadata file, with the same query.
    assert metadata["url"] == "Wahlparameter.csv?where=%7B%7D"
    options = metadata["dls:pandas"]
    frame = await asyncio.to_thread(pd.read_csv, _url(server, path), **options)
    raw_rows = [
        row
        for election in de_raw.elections()
        if (file := election.file("Wahlparameter")) is not None
        for row in de_raw.rows(file)
    ]
    assert len(raw_rows) == len(frame) > 1
    # Codes with leading zeros stay text: 03159016 (Göttingen), 05366024 (Kall) …
    assert sorted(frame["wahl_behoerde_gs"]) == sorted(r["wahl-behoerde-gs"] for r in raw_rows)
    assert "03159016" in set(frame["wahl_behoerde_gs"])
    assert str(frame["wahl_behoerde_gs"].dtype) == "string"
    assert str(frame["zeile"].dtype) == "Int32"
    # polars reads the same codes as text by itself (the CSV quotes nothing it need not).
    polars_frame = await asyncio.to_thread(
        pl.read_csv, _url(server, path), schema_overrides={"wahl_behoerde_gs": pl.String}
    )
    assert sorted(polars_frame["wahl_behoerde_gs"].to_list()) == sorted(frame["wahl_behoerde_gs"])


async def test_pandas_reads_ft_csv_with_the_hints(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    path = "/FT/v1/download/Aktoer.csv"
    where = '{"id":{"lte":40}}'
    metadata = await _csvw(http, path, where)
    assert metadata["dc:source"].startswith(FT_SOURCE["attribution"])
    assert metadata["dls:attribution"]["name"] == "Folketinget"
    frame = await asyncio.to_thread(
        pd.read_csv, _url(server, path, where), **metadata["dls:pandas"]
    )
    expected = [raw.aktoer()[i] for i in sorted(raw.aktoer()) if i <= 40]
    assert list(frame["id"]) == [r["id"] for r in expected]
    got = [None if pd.isna(v) else v for v in frame["gruppenavnkort"]]
    assert got == [r["gruppenavnkort"] for r in expected]
    assert str(frame["periodeid"].dtype) == "Int32"


# --- HTTP semantics of finished files --------------------------------------------------


async def test_length_etag_ranges_and_not_modified(http: httpx.AsyncClient) -> None:
    path = "/FT/v1/download/Stemme.parquet"
    params = {"where": VOTES}
    whole = await http.get(path, params=params)
    assert whole.status_code == 200
    size = len(whole.content)
    assert whole.headers["content-length"] == str(size)
    assert whole.headers["accept-ranges"] == "bytes"
    etag = whole.headers["etag"]
    assert whole.content[:4] == b"PAR1"
    assert whole.content[-4:] == b"PAR1"

    part = await http.get(path, params=params, headers={"range": "bytes=4-99"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 4-99/{size}"
    assert part.content == whole.content[4:100]

    tail = await http.get(path, params=params, headers={"range": "bytes=-8"})
    assert tail.status_code == 206
    assert tail.content == whole.content[-8:]
    assert tail.headers["content-range"] == f"bytes {size - 8}-{size - 1}/{size}"

    beyond = await http.get(path, params=params, headers={"range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"

    # Several ranges at once: the whole file (allowed by RFC 9110), not a multipart body.
    many = await http.get(path, params=params, headers={"range": "bytes=0-1,5-6"})
    assert many.status_code == 200
    assert many.content == whole.content

    same = await http.get(path, params=params, headers={"if-none-match": etag})
    assert same.status_code == 304
    assert same.content == b""
    other = await http.get(path, params=params, headers={"if-none-match": '"other"'})
    assert other.status_code == 200

    # If-Range with another version's validator: the whole file.
    stale = await http.get(path, params=params, headers={"range": "bytes=0-3", "if-range": '"x"'})
    assert stale.status_code == 200
    assert stale.content == whole.content


async def test_csv_streams_unless_asked_for_a_file(http: httpx.AsyncClient) -> None:
    path = "/FT/v1/download/Stemme.csv"
    streamed = await http.get(path, params={"where": VOTES})
    assert "content-length" not in streamed.headers
    assert "etag" not in streamed.headers
    finished = await http.get(path, params={"where": VOTES, "finished": "1"})
    assert finished.headers["content-length"] == str(len(finished.content))
    assert finished.content == streamed.content
    assert finished.headers["x-total-count"] == str(len(_expected_votes()))


async def test_two_requests_build_the_file_once(
    http: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    path = "/FT/v1/download/Stemme.parquet"
    where = '{"afstemningid":{"gt":80,"lte":160}}'
    await odata_replica_cold(http, odata_replica)
    first, second = await asyncio.gather(
        http.get(path, params={"where": where}), http.get(path, params={"where": where})
    )
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    rows = len([r for r in raw.stemme() if 80 < r["afstemningid"] <= 160])
    assert rows > 200
    # One build: its pages once (100 rows per upstream page, plus the count).
    assert odata_replica.data_requests() <= rows // 100 + 3


async def odata_replica_cold(http: httpx.AsyncClient, odata_replica: ODataReplica) -> None:
    odata_replica.faults.clear()
    odata_replica.log.clear()


async def test_a_file_is_only_served_to_its_own_level(
    http: httpx.AsyncClient, server: RunningServer
) -> None:
    path = "/FT/v1/download/Aktoer.parquet"
    where = '{"biografi":{"neq":null}}'
    known = await http.get(path, params={"where": '{"id":{"lte":400}}'}, headers={"x-api-key": KEY})
    assert known.status_code == 200
    anonymous = await http.get(path, params={"where": '{"id":{"lte":400}}'})
    assert anonymous.status_code == 200
    assert known.headers["etag"] != anonymous.headers["etag"]
    assert "biografi" in pq.read_table(io.BytesIO(known.content)).column_names
    assert "biografi" not in pq.read_table(io.BytesIO(anonymous.content)).column_names
    # The level-1 file's validator means nothing to a level-0 caller.
    again = await http.get(
        path,
        params={"where": '{"id":{"lte":400}}'},
        headers={"if-none-match": known.headers["etag"]},
    )
    assert again.status_code == 200
    assert "biografi" not in pq.read_table(io.BytesIO(again.content)).column_names
    # Filtering on a column above the caller's level is refused before any file.
    denied = await http.get(path, params={"where": where})
    assert denied.status_code == 403


async def test_the_attribution_travels_with_every_export(http: httpx.AsyncClient) -> None:
    for fmt in ("csv", "ndjson", "parquet"):
        response = await http.head(f"/FT/v1/download/Stemme.{fmt}", params={"where": VOTES})
        links = response.headers["link"]
        author = next(p for p in links.split(", ") if 'rel="author"' in p)
        assert author.startswith(f"<{FT_SOURCE['attributionUrl']}>")
        title = author.split("title*=UTF-8''")[1]
        assert unquote(title).startswith(FT_SOURCE["attribution"])


async def test_graphql_answers_over_ft_carry_the_attribution(http: httpx.AsyncClient) -> None:
    query = "{ FT_Stemme(first: 1) { totalCount } }"
    for _ in range(2):  # the second answer comes from the response cache
        body = (await http.post("/graphql", json={"query": query})).json()
        assert body["data"]["FT_Stemme"]["totalCount"] == len(raw.stemme())
        (credit,) = body["extensions"]["attribution"]
        assert credit == {
            "register": "FT",
            "text": FT_SOURCE["attribution"],
            "name": "Folketinget",
            "url": FT_SOURCE["attributionUrl"],
            "required": True,
        }
    # DE's terms do not require it: no extensions.attribution.
    body = (
        await http.post("/graphql", json={"query": "{ DE_Wahlparameter { totalCount } }"})
    ).json()
    assert body["data"]["DE_Wahlparameter"]["totalCount"] > 0
    assert "attribution" not in (body.get("extensions") or {})
    # A document that does not run reads nothing: nothing to credit.
    body = (await http.post("/graphql", json={"query": "{ FT_Stemme { nope } }"})).json()
    assert "attribution" not in (body.get("extensions") or {})


async def test_the_sdl_and_catalogue_name_the_source(http: httpx.AsyncClient) -> None:
    sdl = (await http.get("/graphql/schema")).text
    assert f"Source: {FT_SOURCE['attribution']}" in sdl
    # Once per FT entity type (not its page and event types), after its description.
    entity_types = {
        name
        for name in re.findall(r"^type (FT_\w+)", sdl, flags=re.MULTILINE)
        if not name.endswith(("Connection", "Edge", "Event"))
    }
    assert len(entity_types) > 10
    assert sdl.count(f"Source: {FT_SOURCE['attribution']}") == len(entity_types)
    catalogue = (await http.get("/catalog.json")).json()
    ft = next(r for r in catalogue["registers"] if r["name"] == "FT")
    assert ft["attribution"]["required"] is True
    de = next(r for r in catalogue["registers"] if r["name"] == "DE")
    de_source = json.loads((REGISTERS / "DE" / "rc00005" / "Source.json").read_text("utf-8"))
    # DE's terms require no credit: the catalogue names it, the SDL does not.
    assert de_source["attribution"] not in sdl
    assert de["attribution"] == {
        "register": "DE",
        "text": de_source["attribution"],
        "required": False,
    }


async def test_stemme_dates_in_csv_are_as_served(server: RunningServer) -> None:
    url = _url(server, "/FT/v1/download/Stemme.csv", '{"afstemningid":{"eq":1}}')
    frame = await asyncio.to_thread(pd.read_csv, url, dtype={"opdateringsdato": "string"})
    assert list(frame["opdateringsdato"]) == [r["opdateringsdato"] for r in stemme(afstemningid=1)]
    assert dt.datetime.fromisoformat(frame["opdateringsdato"][0])


def _berlin_moment(text: str) -> dt.datetime | None:
    """A recorded ``dd.mm.yyyy hh:mm:ss[ mmm]`` (German wall clock) as its UTC moment."""
    if not text.strip():
        return None
    stamp = dt.datetime.strptime(text[:19], "%d.%m.%Y %H:%M:%S")
    millis = text[20:].strip()
    if millis:
        stamp = stamp.replace(microsecond=int(millis) * 1000)
    return stamp.replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(dt.UTC)


async def test_de_codes_and_local_timestamps_through_polars(server: RunningServer) -> None:
    de_source = json.loads((REGISTERS / "DE" / "rc00005" / "Source.json").read_text("utf-8"))
    assert de_source["timeZone"] == "Europe/Berlin"
    url = _url(
        server, "/DE/v1/download/Wahlergebnis.parquet", '{"wahl_behoerde_gs":{"eq":"05111000"}}'
    )
    frame = await asyncio.to_thread(pl.read_parquet, url)
    (election,) = [e for e in de_raw.elections() if e.folder.name == "duesseldorf-kommunal2020"]
    file = election.file("Wahlergebnisse")
    assert file is not None
    recorded = de_raw.rows(file)
    assert frame.schema["bezirk_nr"] == pl.String
    # District numbers keep their leading zeros ("0101").
    assert set(frame["bezirk_nr"].to_list()) == {r["bezirk-nr"] for r in recorded}
    assert any(n.startswith("0") for n in frame["bezirk_nr"].to_list())
    assert frame.schema["zeitstempel_erfassung"] == pl.Datetime("us", "UTC")
    moments = {_berlin_moment(r["zeitstempel-erfassung"]) for r in recorded}
    assert set(frame["zeitstempel_erfassung"].to_list()) <= moments
    assert frame["zeitstempel_erfassung"].null_count() < frame.height


async def test_a_subgraph_entities_answer_carries_the_attribution(http: httpx.AsyncClient) -> None:
    vote = raw.stemme()[0]
    query = (
        "query($r: [_Any!]!) "
        "{ _entities(representations: $r) { ... on FT_Stemme { id aktoerid } } }"
    )
    variables = {"r": [{"__typename": "FT_Stemme", "id": vote["id"]}]}
    body = (await http.post("/FT/v1", json={"query": query, "variables": variables})).json()
    assert body["data"]["_entities"] == [{"id": vote["id"], "aktoerid": vote["aktoerid"]}]
    assert [c["register"] for c in body["extensions"]["attribution"]] == ["FT"]


async def test_links_never_echo_credentials(http: httpx.AsyncClient) -> None:
    params = {"where": VOTES, "apikey": KEY, "finished": "1"}
    response = await http.head("/FT/v1/download/Stemme.csv", params=params)
    assert response.status_code == 200
    assert KEY not in response.headers["link"]
    assert "finished" not in response.headers["link"]
    assert quote(VOTES, safe="") in response.headers["link"]
    metadata = await http.get("/FT/v1/download/Stemme.csv-metadata.json", params=params)
    assert KEY not in metadata.json()["url"]
