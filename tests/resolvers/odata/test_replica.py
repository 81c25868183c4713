"""The FT replica against the raw recorded files, over a real loopback socket."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from xml.etree import ElementTree

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings, strategies as st

from resolvers.odata.replica.server import (
    DEFAULT_DATA_DIR,
    ODataReplica,
    demo_replica,
    load_ft_data,
)
from resolvers.replica_kit.faults import Fault

DATA = Path(__file__).resolve().parents[3] / "data" / "ft"
EDM = "{http://schemas.microsoft.com/ado/2009/11/edm}"

Raw = dict[str, Any]


# --- the raw files, read by plain stdlib code ---------------------------------------------------


@functools.cache
def raw_csv(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert reader.fieldnames is not None
        return list(reader.fieldnames), rows


def _int_or_null(text: str) -> int | None:
    return None if text == "NA" else int(text)


def _text_or_null(text: str) -> str | None:
    return None if text == "NA" else text


@functools.cache
def stemme() -> list[Raw]:
    _, rows = raw_csv("northatlantic_votes_raw.csv")
    out = [
        {
            "id": int(r["id"]),
            "typeid": _int_or_null(r["typeid"]),
            "afstemningid": int(r["afstemningid"]),
            "aktørid": int(r["aktørid"]),
            "opdateringsdato": r["opdateringsdato"],
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: r["id"])


@functools.cache
def afstemning() -> list[Raw]:
    _, rows = raw_csv("ballot_info_raw.csv")
    out = [
        {
            "id": int(r["id"]),
            "nummer": int(r["nummer"]),
            "konklusion": _text_or_null(r["konklusion"]),
            "vedtaget": {"TRUE": True, "FALSE": False}[r["vedtaget"]],
            "kommentar": _text_or_null(r["kommentar"]),
            "mødeid": int(r["mødeid"]),
            "typeid": int(r["typeid"]),
            "sagstrinid": _int_or_null(r["sagstrinid"]),
            "opdateringsdato": r["opdateringsdato"],
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: r["id"])


@functools.cache
def aktoer_navn() -> dict[int, str]:
    with sqlite3.connect(DATA / "ft.oda.Aktør.sqlite.db") as db:
        rows = db.execute('SELECT id, navn FROM "Aktør"').fetchall()
    db.close()
    return {int(i): n for i, n in rows}


@functools.cache
def metadata_sets() -> dict[str, list[str]]:
    """Entity set → property names in $metadata order, from the raw EDMX."""
    text = (DATA / "metadata_2021-05.xml").read_text(encoding="utf-8").split("\n", 1)[1]
    root = ElementTree.fromstring(text)
    types = {t.get("Name"): t for t in root.iter(f"{EDM}EntityType")}
    return {
        s.get("Name", ""): [p.get("Name", "") for p in types[s.get("Name")].iter(f"{EDM}Property")]
        for s in root.iter(f"{EDM}EntitySet")
    }


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# --- fixtures and helpers -----------------------------------------------------------------------


# One replica (and event loop) for the module: starting and stopping uvicorn per test would
# cost more than the tests themselves.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def fetch_all(
    client: httpx.AsyncClient,
    clean_odata_replica: ODataReplica,
    path: str,
    params: dict[str, str] | None = None,
) -> list[Raw]:
    """Every row of a request, following odata.nextLink; checks the paging contract."""
    rows: list[Raw] = []
    response = await client.get(clean_odata_replica.url + path, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["value"]) <= 100
        rows.extend(body["value"])
        link = body.get("odata.nextLink")
        if link is None:
            return rows
        assert len(body["value"]) == 100
        assert link.startswith(clean_odata_replica.url)
        response = await client.get(link)


def ids(rows: list[Raw]) -> list[int]:
    return [r["id"] for r in rows]


# --- loading ----------------------------------------------------------------------------------


async def test_load_follows_the_readme_rules() -> None:
    data = load_ft_data(DATA)
    assert load_ft_data(DATA) is data  # parsed once per process
    assert list(data.entity_sets) == list(metadata_sets())
    for name, props in metadata_sets().items():
        assert [p.name for p in data.entity_sets[name].properties] == props
    assert list(data.rows["Stemme"]) == stemme()
    assert list(data.rows["Afstemning"]) == afstemning()
    sara = data.index["Aktør"][13]
    assert (sara["navn"], sara["periodeid"], sara["gruppenavnkort"]) == ("Sara Olsvig", None, None)
    assert data.index["Aktør"][269]["periodeid"] == 32
    assert [r["type"] for r in data.rows["Stemmetype"]] == [
        "For",
        "Imod",
        "Fravær",
        "Hverken for eller imod",
    ]
    assert {r["opdateringsdato"] for r in data.rows["Stemmetype"]} == {"2014-09-09T09:05:59.653"}
    assert data.rows["Sag"] == ()
    assert not data.metadata.startswith(b"<!--")
    assert DEFAULT_DATA_DIR.resolve() == DATA


# --- counts, paging, envelope -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Stemme", lambda: len(raw_csv("northatlantic_votes_raw.csv")[1])),
        ("Afstemning", lambda: len(raw_csv("ballot_info_raw.csv")[1])),
        ("Akt%C3%B8r", lambda: len(aktoer_navn())),
        ("Sag", lambda: 0),
    ],
)
async def test_counts_equal_the_raw_files(
    clean_odata_replica: ODataReplica,
    client: httpx.AsyncClient,
    path: str,
    expected: Callable[[], int],
) -> None:
    response = await client.get(f"{clean_odata_replica.url}{path}?$inlinecount=allpages&$top=0")
    assert response.status_code == 200
    body = response.json()
    assert body["odata.count"] == str(expected())
    assert body["value"] == []
    assert list(body) == ["odata.metadata", "odata.count", "value"]
    if path == "Stemme":
        assert expected() == 39_882


async def test_paging_through_all_afstemning_gives_the_raw_rows(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    rows = await fetch_all(client, clean_odata_replica, "Afstemning")
    assert rows == afstemning()
    assert [list(r) for r in rows[:1]] == [raw_csv("ballot_info_raw.csv")[0]]


async def test_paging_a_filtered_set_gives_the_raw_rows_in_id_order(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    rows = await fetch_all(client, clean_odata_replica, "Stemme", {"$filter": "aktørid eq 15758"})
    expected = [r for r in stemme() if r["aktørid"] == 15758]
    assert len(expected) > 1000
    assert rows == expected


async def test_first_page_envelope_and_next_link(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    params = {
        "$filter": "typeid eq 1",
        "$select": "id,typeid",
        "$orderby": "afstemningid desc",
        "$inlinecount": "allpages",
        "$top": "250",
        "$skip": "10",
    }
    response = await client.get(clean_odata_replica.url + "Stemme", params=params)
    assert (
        response.headers["content-type"] == "application/json;odata=minimalmetadata; charset=utf-8"
    )
    assert response.headers["dataserviceversion"] == "3.0"
    body = response.json()
    assert list(body) == ["odata.metadata", "odata.count", "value", "odata.nextLink"]
    assert body["odata.metadata"] == clean_odata_replica.url + "$metadata#Stemme"
    assert body["odata.count"] == str(sum(1 for r in stemme() if r["typeid"] == 1))
    assert len(body["value"]) == 100
    link = urlsplit(body["odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == clean_odata_replica.url + "Stemme"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert query == {**params, "$top": "150", "$skip": "110"}


async def test_top_beyond_the_page_size_continues_to_exactly_top_rows(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    rows = await fetch_all(client, clean_odata_replica, "Stemme", {"$top": "250"})
    assert rows == stemme()[:250]
    exact = await client.get(clean_odata_replica.url + "Stemme", params={"$top": "100"})
    assert "odata.nextLink" not in exact.json()
    skipped = await fetch_all(client, clean_odata_replica, "Stemme", {"$skip": "39800"})
    assert skipped == stemme()[39800:]


# --- $select, $orderby ------------------------------------------------------------------------


async def test_select_gives_only_those_properties_in_metadata_order(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    response = await client.get(
        clean_odata_replica.url + "Stemme", params={"$select": "opdateringsdato, id", "$top": "3"}
    )
    assert response.json()["value"] == [
        {"id": r["id"], "opdateringsdato": r["opdateringsdato"]} for r in stemme()[:3]
    ]
    star = await client.get(
        clean_odata_replica.url + "Stemme", params={"$select": "*", "$top": "1"}
    )
    assert star.json()["value"] == stemme()[:1]


async def test_orderby_puts_nulls_first_ascending_and_last_descending(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    nulls = [r["id"] for r in afstemning() if r["sagstrinid"] is None]
    assert len(nulls) == 14
    params = {"$orderby": "sagstrinid", "$select": "id,sagstrinid", "$top": "20"}
    ascending = (await client.get(clean_odata_replica.url + "Afstemning", params=params)).json()[
        "value"
    ]
    expected = sorted(
        afstemning(), key=lambda r: (r["sagstrinid"] is not None, r["sagstrinid"] or 0, r["id"])
    )
    assert ids(ascending) == ids(expected[:20])
    assert ids(ascending[:14]) == nulls
    params = {"$orderby": "sagstrinid desc", "$select": "id", "$skip": "10280"}
    descending = await fetch_all(client, clean_odata_replica, "Afstemning", params)
    assert ids(descending[-14:]) == nulls


async def test_orderby_datetime_desc_then_id(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    params = {"$orderby": "opdateringsdato desc,typeid", "$filter": "aktørid eq 277"}
    rows = await fetch_all(client, clean_odata_replica, "Stemme", params)
    expected = [r for r in stemme() if r["aktørid"] == 277]  # in id order
    expected.sort(key=lambda r: r["typeid"])
    expected.sort(key=lambda r: when(r["opdateringsdato"]), reverse=True)
    assert rows == expected


# --- $filter ----------------------------------------------------------------------------------

STEMME_FILTERS: list[tuple[str, Callable[[Raw], bool]]] = [
    ("afstemningid eq 1", lambda r: r["afstemningid"] == 1),
    ("typeid ne 3 and aktørid eq 262", lambda r: r["typeid"] != 3 and r["aktørid"] == 262),
    ("afstemningid gt 10370", lambda r: r["afstemningid"] > 10370),
    ("afstemningid ge 10376", lambda r: r["afstemningid"] >= 10376),
    ("afstemningid lt 3", lambda r: r["afstemningid"] < 3),
    ("afstemningid le 2", lambda r: r["afstemningid"] <= 2),
    (
        "(aktørid eq 13 or aktørid eq 294) and typeid eq 1",
        lambda r: r["aktørid"] in (13, 294) and r["typeid"] == 1,
    ),
    (
        "not (typeid eq 3) and afstemningid lt 500",
        lambda r: r["typeid"] != 3 and r["afstemningid"] < 500,
    ),
    ("akt%C3%B8rid eq 6684", lambda r: r["aktørid"] == 6684),
]


@pytest.mark.parametrize(("expression", "predicate"), STEMME_FILTERS)
async def test_filter_operators_on_stemme(
    clean_odata_replica: ODataReplica,
    client: httpx.AsyncClient,
    expression: str,
    predicate: Callable[[Raw], bool],
) -> None:
    # Given percent-encoded by hand, as clients that build URLs themselves do.
    path = "Stemme?$select=id&$filter=" + quote(expression, safe="%")
    rows = await fetch_all(client, clean_odata_replica, path)
    expected = [r["id"] for r in stemme() if predicate(r)]
    assert expected
    assert ids(rows) == expected


AFSTEMNING_FILTERS: list[tuple[str, Callable[[Raw], bool]]] = [
    ("sagstrinid eq null", lambda r: r["sagstrinid"] is None),
    (
        "kommentar ne null and typeid eq 3",
        lambda r: r["kommentar"] is not None and r["typeid"] == 3,
    ),
    (
        "sagstrinid lt 20000 or sagstrinid gt 266920",
        lambda r: r["sagstrinid"] is not None and not 20000 <= r["sagstrinid"] <= 266920,
    ),
    ("vedtaget eq false and typeid eq 3", lambda r: not r["vedtaget"] and r["typeid"] == 3),
    ("substringof('fejl', kommentar)", lambda r: "fejl" in (r["kommentar"] or "")),
    ("substringof('fejl', kommentar) eq true", lambda r: "fejl" in (r["kommentar"] or "")),
    (
        "not substringof('Vedtaget', konklusion) and typeid eq 4",
        lambda r: (
            r["konklusion"] is not None and "Vedtaget" not in r["konklusion"] and r["typeid"] == 4
        ),
    ),
    (
        "startswith(konklusion,'Vedtaget\nFor')",
        lambda r: (r["konklusion"] or "").startswith("Vedtaget\nFor"),
    ),
    ("endswith(kommentar,'.')", lambda r: (r["kommentar"] or "").endswith(".")),
    ("substringof('SF''s', kommentar)", lambda r: "SF's" in (r["kommentar"] or "")),
    ("kommentar eq ''", lambda r: r["kommentar"] == ""),
]


@pytest.mark.parametrize(("expression", "predicate"), AFSTEMNING_FILTERS)
async def test_filters_with_null_and_strings_on_afstemning(
    clean_odata_replica: ODataReplica,
    client: httpx.AsyncClient,
    expression: str,
    predicate: Callable[[Raw], bool],
) -> None:
    rows = await fetch_all(
        client, clean_odata_replica, "Afstemning", {"$filter": expression, "$select": "id"}
    )
    expected = [r["id"] for r in afstemning() if predicate(r)]
    assert expected
    assert ids(rows) == expected


AKTOER_LITERALS: list[tuple[str, Callable[[str], bool]]] = [
    (
        "navn eq 'NATO''s Parlamentariske Forsamling'",
        lambda n: n == "NATO's Parlamentariske Forsamling",
    ),
    ("substringof('100%', navn)", lambda n: "100%" in n),
    ("startswith(navn, 'Ernst & ')", lambda n: n.startswith("Ernst & ")),
    ("substringof(' & ', navn) and substringof('''', navn)", lambda n: " & " in n and "'" in n),
    ("navn eq 'x'' or 1 eq 1 or navn eq ''x'", lambda n: n == "x' or 1 eq 1 or navn eq 'x"),
    ("navn eq '%26$top=1&%'", lambda n: n == "%26$top=1&%"),
]


@pytest.mark.parametrize(("expression", "predicate"), AKTOER_LITERALS)
async def test_string_literals_with_quote_percent_and_ampersand(
    clean_odata_replica: ODataReplica,
    client: httpx.AsyncClient,
    expression: str,
    predicate: Callable[[str], bool],
) -> None:
    url = (
        f"{clean_odata_replica.url}Akt%C3%B8r?$select=id,navn&$filter={quote(expression, safe='')}"
    )
    rows = await fetch_all(client, clean_odata_replica, url.removeprefix(clean_odata_replica.url))
    expected = [i for i, n in sorted(aktoer_navn().items()) if predicate(n)]
    assert ids(rows) == expected
    if "1 eq 1" in expression or "$top" in expression:
        assert expected == []
    else:
        assert expected


async def test_long_or_chain_of_ids(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    wanted = [r["id"] for r in stemme()[::100]][:400]
    expression = " or ".join(f"id eq {i}" for i in wanted)
    rows = await fetch_all(
        client, clean_odata_replica, "Stemme", {"$filter": expression, "$select": "id"}
    )
    assert ids(rows) == wanted


async def test_datetimes_compare_as_datetimes_not_text(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    short = next(r for r in stemme() if "." not in r["opdateringsdato"])["opdateringsdato"]
    literal = short + ".000"  # the same instant, written differently
    rows = await fetch_all(
        client,
        clean_odata_replica,
        "Stemme",
        {"$filter": f"opdateringsdato eq datetime'{literal}'"},
    )
    expected = [r for r in stemme() if when(r["opdateringsdato"]) == when(short)]
    assert expected
    assert rows == expected

    expression = (
        "opdateringsdato ge DateTime'2020-01-01T00:00' "
        "and opdateringsdato lt datetime'2020-06-30T12:00:00.5'"
    )
    rows = await fetch_all(client, clean_odata_replica, "Afstemning", {"$filter": expression})
    low, high = dt.datetime(2020, 1, 1), dt.datetime(2020, 6, 30, 12, 0, 0, 500000)
    expected = [r for r in afstemning() if low <= when(r["opdateringsdato"]) < high]
    assert expected
    assert rows == expected


# --- envelope details -------------------------------------------------------------------------


async def test_non_ascii_is_escaped_in_the_raw_body(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    response = await client.get(clean_odata_replica.url + "Akt%C3%B8r(269)")
    raw = response.content
    assert raw.isascii()
    assert (
        b'"odata.metadata":"' + clean_odata_replica.url.encode() + b"$metadata#Akt\\u00f8r/@Element"
        in raw
    )
    votes = await client.get(clean_odata_replica.url + "Stemme?$top=1")
    assert b'"akt\\u00f8rid":' in votes.content
    types = await client.get(clean_odata_replica.url + "Stemmetype(3)")
    assert b'"Frav\\u00e6r"' in types.content


async def test_single_entity(clean_odata_replica: ODataReplica, client: httpx.AsyncClient) -> None:
    response = await client.get(clean_odata_replica.url + "Afstemning(1)")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("odata.metadata") == clean_odata_replica.url + "$metadata#Afstemning/@Element"
    assert body == afstemning()[0]
    selected = await client.get(clean_odata_replica.url + "Aktør(13)", params={"$select": "navn"})
    assert selected.json()["navn"] == aktoer_navn()[13]
    missing = await client.get(clean_odata_replica.url + "Afstemning(999999)")
    assert missing.status_code == 404


async def test_inlinecount_none_and_format_json(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    params = {"$inlinecount": "none", "$format": "json", "$top": "1"}
    body = (await client.get(clean_odata_replica.url + "Stemme", params=params)).json()
    assert "odata.count" not in body


async def test_metadata_and_service_document(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    response = await client.get(clean_odata_replica.url + "$metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    raw = (DATA / "metadata_2021-05.xml").read_bytes()
    assert response.content == raw.split(b"\n", 1)[1]
    service = (await client.get(clean_odata_replica.url)).json()
    assert [s["name"] for s in service["value"]] == list(metadata_sets())


async def test_sambehandlinger_and_unknown_sets_are_404(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    assert "Sambehandlinger" in metadata_sets()
    for path in ("Sambehandlinger", "Sambehandlinger(1)", "Nope", "Stemme(1)/Aktør"):
        response = await client.get(clean_odata_replica.url + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "query",
    [
        "$top=-1",
        "$top=abc",
        "$top=",
        "$skip=1.5",
        "$skip=99999999999",
        "$filter=",
        "$filter=id%20eq",
        "$filter=id%20eq%20'x",
        "$filter=nope%20eq%201",
        "$filter=id%20eq%20'1'",
        "$filter=opdateringsdato%20gt%20'2014-01-01'",
        "$filter=opdateringsdato%20gt%20datetime'2014-13-01'",
        "$filter=typeid",
        "$filter=id%20eq%201)",
        "$filter=substringof(id,'x')",
        "$filter=id%20add%201%20eq%202",
        "$orderby=nope",
        "$orderby=id%20sideways",
        "$orderby=",
        "$select=nope",
        "$select=id,",
        "$expand=Akt%C3%B8r",
        "$foo=1",
        "$inlinecount=some",
        "$format=xml",
        "$top=1&$top=2",
        "$filter=%FF",
    ],
)
async def test_malformed_options_are_400_with_empty_body(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"{clean_odata_replica.url}Stemme?{query}")
    assert response.status_code == 400
    assert response.content == b""


async def test_hostile_nesting_and_length_are_400(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    for expression in (
        "(" * 200 + "id eq 1" + ")" * 200,
        "not " * 200 + "(id eq 1)",
        "substringof(" * 200,
        "id eq 1 or " * 1000 + "id eq 2",
    ):
        response = await client.get(
            clean_odata_replica.url + "Stemme", params={"$filter": expression}
        )
        assert response.status_code == 400
    nested = "(" * 40 + "id eq 154" + ")" * 40
    ok = await client.get(clean_odata_replica.url + "Stemme", params={"$filter": nested})
    assert ids(ok.json()["value"]) == [154]


async def test_writes_are_501_and_options_405(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, clean_odata_replica.url + "Stemme", content=b"{}")
        assert response.status_code == 501
        assert "odata.error" in response.json()
    options = await client.options(clean_odata_replica.url + "Stemme")
    assert options.status_code == 405


async def test_raw_utf8_set_name_is_accepted_by_the_app(clean_odata_replica: ODataReplica) -> None:
    # h11 refuses raw non-ASCII request targets before the app sees them, so this talks
    # ASGI directly, as a server that passes them on would.
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/api/Aktør(13)",
        "raw_path": "/api/Aktør(13)".encode(),
        "query_string": b"$select=navn",
        "headers": [(b"host", b"example.test")],
    }
    await clean_odata_replica.app(scope, receive, send)
    assert messages[0]["status"] == 200
    assert json.loads(messages[1]["body"])["navn"] == aktoer_navn()[13]


# --- faults, latency, log ---------------------------------------------------------------------


async def test_error_faults_apply_once_then_clear(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    clean_odata_replica.faults.inject(Fault("status", status=500))
    clean_odata_replica.faults.inject(Fault("status", status=503))
    first = await client.get(clean_odata_replica.url + "Stemme")
    second = await client.get(clean_odata_replica.url + "Stemme")
    third = await client.get(clean_odata_replica.url + "Stemme")
    assert [first.status_code, second.status_code, third.status_code] == [500, 503, 200]


async def test_fault_limited_by_path_and_unlimited_times(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    clean_odata_replica.faults.inject(Fault("status", status=503, times=None, match="Aktør"))
    for _ in range(3):
        assert (await client.get(clean_odata_replica.url + "Akt%C3%B8r")).status_code == 503
    assert (await client.get(clean_odata_replica.url + "Stemme")).status_code == 200
    clean_odata_replica.faults.clear()
    assert (await client.get(clean_odata_replica.url + "Akt%C3%B8r")).status_code == 200
    with pytest.raises(ValueError, match="unknown fault"):
        clean_odata_replica.faults.inject(Fault("explode"))


async def test_timeout_fault_outlasts_the_client_timeout(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    clean_odata_replica.faults.inject(Fault("timeout"))
    with pytest.raises(httpx.ReadTimeout):
        await client.get(clean_odata_replica.url + "Stemme", timeout=0.3)
    assert (await client.get(clean_odata_replica.url + "Stemme")).status_code == 200


async def test_stop_ends_a_held_request_promptly(client: httpx.AsyncClient) -> None:
    replica = await ODataReplica().start()
    replica.faults.inject(Fault("timeout"))
    pending = asyncio.ensure_future(client.get(replica.url + "Stemme", timeout=60))
    for _ in range(500):  # until the request is in, at most 5 s
        if replica.log:
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await replica.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(httpx.TransportError):
        await pending


async def test_truncate_drop_and_malformed(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    clean_odata_replica.faults.inject(Fault("cut"))
    with pytest.raises(httpx.RemoteProtocolError, match=r"complete message body"):
        await client.get(clean_odata_replica.url + "Stemme")
    clean_odata_replica.faults.inject(Fault("drop"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(clean_odata_replica.url + "Stemme")
    clean_odata_replica.faults.inject(Fault("truncate"))
    short = await client.get(clean_odata_replica.url + "Stemme")
    assert short.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(short.content)
    clean_odata_replica.faults.inject(Fault("malformed"))
    response = await client.get(clean_odata_replica.url + "Stemme")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert (await client.get(clean_odata_replica.url + "Stemme?$top=1")).json()[
        "value"
    ] == stemme()[:1]


async def test_latency_is_added_to_every_response(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    clean_odata_replica.latency = 0.3
    started = time.monotonic()
    response = await client.get(clean_odata_replica.url + "Stemmetype")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    clean_odata_replica.latency = 0.0


async def test_request_log_records_everything(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    await client.get(clean_odata_replica.url + "$metadata")
    await client.get(clean_odata_replica.url + "Akt%C3%B8r", params={"$filter": "id eq 13"})
    clean_odata_replica.faults.inject(Fault("status", status=500))
    await client.get(clean_odata_replica.url + "Stemme")
    await client.get(clean_odata_replica.url + "Nope")
    assert [(r.method, r.path, r.status) for r in clean_odata_replica.log] == [
        ("GET", "/api/$metadata", 200),
        ("GET", "/api/Aktør", 200),
        ("GET", "/api/Stemme", 500),
        ("GET", "/api/Nope", 404),
    ]
    assert clean_odata_replica.log[1].raw_path == "/api/Akt%C3%B8r"
    assert clean_odata_replica.log[1].params == {"$filter": "id eq 13"}
    assert clean_odata_replica.log[2].fault == "status"
    assert clean_odata_replica.log.statuses(fault=True) == [500]
    assert clean_odata_replica.log.paths(suffix="/$metadata") == ["/api/$metadata"]
    assert clean_odata_replica.data_requests() == 3
    clean_odata_replica.log.clear()
    assert clean_odata_replica.log == []
    assert clean_odata_replica.data_requests() == 0


async def test_demo_replica(client: httpx.AsyncClient) -> None:
    handle = await demo_replica()
    try:
        assert handle.address.startswith("http://127.0.0.1:")
        assert handle.address.endswith("/api/")
        assert handle.overrides == {"FT": {"url": handle.address}}
        response = await client.get(handle.address + "Stemmetype")
        assert len(response.json()["value"]) == 4
    finally:
        await handle.stop()


# --- hostile input ----------------------------------------------------------------------------

_TOKENS = [
    "id", "typeid", "aktørid", "akt%C3%B8rid", "opdateringsdato", "kommentar", "vedtaget",
    "eq", "ne", "gt", "le", "and", "or", "not", "(", ")", ",", "'", "''", "'x'", "'%'", "&",
    "1", "-1", "99999999999999999999999", "1.5", "null", "true", "datetime'2014-09-09T09:05'",
    "datetime'", "DateTime'2014-02-30T00:00'", "guid'x'", "substringof", "startswith(",
    "endswith", "tolower(", "length", "year", "/", "$", "%", "+", " ", "\\", "\x00",
]  # fmt: skip
_GARBAGE = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(_TOKENS), max_size=14).map(" ".join),
    st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_GARBAGE, entity_set=st.sampled_from(["Stemme", "Afstemning", "Aktør"]))
async def test_garbage_filters_never_fail_the_server(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient, text: str, entity_set: str
) -> None:
    response = await client.get(
        clean_odata_replica.url + entity_set,
        params={"$filter": text, "$orderby": text, "$top": "1"},
    )
    assert response.status_code in (200, 400)
    response = await client.get(
        clean_odata_replica.url + entity_set, params={"$filter": text, "$top": "1"}
    )
    assert response.status_code in (200, 400)


async def test_next_link_keeps_a_literal_with_reserved_characters(
    clean_odata_replica: ODataReplica, client: httpx.AsyncClient
) -> None:
    literal = "a&b=c%d+e#f'g"
    expression = f"konklusion ne '{literal.replace(chr(39), chr(39) * 2)}' and typeid eq 3"
    params = {"$filter": expression, "$select": "id", "$top": "250"}
    rows = await fetch_all(client, clean_odata_replica, "Afstemning", params)
    expected = [r["id"] for r in afstemning() if r["konklusion"] is not None and r["typeid"] == 3]
    assert ids(rows) == expected[:250]
    assert len(rows) == 250
