"""ČSÚ's "not yet" errors 10, 20 and 30: notices with an empty answer, never failures.

ČSÚ documents (``opendata/kv2022/KV2022_XML.htm``, "Kódy chyb"): 10 the batch does not exist
yet, 20 the election date is not activated yet, 30 no batch exists yet for the date, 9999 any
other error. The replica answers 20 for a date other than its election's and 30 for the newest
batch of an election without any.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.server import serve_asgi
from gateway.model.errors import UpstreamInvalidError
from gateway.model.query import Condition, Query
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.parse import error_of, parse_xml
from resolvers.volby_xml.replica.data import error_document, load_catalogue
from resolvers.volby_xml.replica.server import VolbyReplica
from resolvers.volby_xml.rows import read_document
from tests.resolvers.volby_xml.conftest import DATA, register
from tests.support import gateway_client, graphql, register_subset

Make = Callable[..., Awaitable[VolbySource]]

# A by-election date of the 2022 term that volby.cz has not activated.
NOT_ACTIVATED = [
    {"context": {"volby": "kv2022"}, "path": "pls/kv2022", "params": {"datumvoleb": "20270313"}}
]


def query(entity: str, **equal: Any) -> Query:
    where = None
    if equal:
        ((name, value),) = equal.items()
        where = Condition(name, "eq", value)
    return Query(register("CZ").datamodel.entities[entity], where)


def not_yet(notices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in notices if n["code"] == "NOT_YET_AVAILABLE"]


@pytest.mark.parametrize(("code", "waiting"), [(10, True), (20, True), (30, True), (9999, False)])
def test_codes_10_20_30_mean_not_yet(code: int, waiting: bool) -> None:
    election = load_catalogue(DATA)["kv2022"]
    content = error_document(election, "vysledky_okrsky", code=code)
    error = error_of(parse_xml(content))
    assert error is not None
    assert error.code == code
    assert error.not_yet_available is waiting
    assert (error.meaning is not None) is waiting
    mapped = read_document(content, register("CZ").datamodel, {"volby": "kv2022"})
    assert mapped.rows == {}
    assert mapped.error == error


async def test_a_date_not_activated_gives_empty_results_and_a_notice(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, elections=NOT_ACTIVATED, districts=["CZ0100"])
    for entity in ("TYP_ZASTUP", "OBEC", "VOLEBNI_STRANA_OBEC", "OKRSEK", "DAVKA"):
        page = await source.fetch(query(entity))
        assert page.rows == [], entity
        (notice,) = not_yet(page.notices)
        assert notice["upstreamCode"] == 20, entity
        assert notice["election"] == "volby=kv2022"
        assert "not activated" in notice["message"]
    asked = {(r.path, r.params.get("datumvoleb")) for r in volby_replica.log}
    assert ("/pls/kv2022/vysledky", "20270313") in asked
    assert ("/pls/kv2022/vysledky_obce_okres", "20270313") in asked
    assert ("/pls/kv2022/vysledky_okrsky", "20270313") in asked


async def test_no_batch_yet_is_error_30_as_a_notice(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    page = await source.fetch(query("OKRSEK", volby="kv2014"))
    assert page.rows == []
    (notice,) = not_yet(page.notices)
    assert notice["upstreamCode"] == 30
    assert "no batch exists yet" in notice["message"]
    progress = await source.fetch(query("PRUBEH", volby="kv2014"))
    (row,) = progress.rows
    assert row["DAVKY_NACTENE"] == 0
    assert row["POSLEDNI_DAVKA"] is None
    assert row["DATUM_CAS_KONTROLY"] is not None


async def test_a_council_not_recorded_is_error_10_as_a_notice(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    page = await source.fetch(query("OBEC", OBEC_ID="kv2022|554782"))
    assert page.rows == []
    (notice,) = not_yet(page.notices)
    assert notice["upstreamCode"] == 10


async def test_other_errors_still_fail(volby_replica: VolbyReplica, make_source: Make) -> None:
    other = error_document(volby_replica.catalogue["kv2014"], "vysledky", code=9999)

    async def answer(request: Request) -> Response:
        return Response(other, media_type="application/xml")

    server = await serve_asgi(Starlette(routes=[Route("/pls/{election}/{document}", answer)]))
    try:
        source = await make_source(volby_replica, url=server.url)
        with pytest.raises(UpstreamInvalidError, match="error 9999"):
            await source.fetch(query("TYP_ZASTUP", volby="kv2014"))
    finally:
        await server.stop()


# --- through GraphQL ---------------------------------------------------------------------------


@pytest.fixture
async def client(volby_replica: VolbyReplica) -> AsyncIterator[httpx.AsyncClient]:
    overrides = {
        "CZ": {**volby_replica.overrides["CZ"], "elections": NOT_ACTIVATED, "districts": []}
    }
    with register_subset("CZ") as root:
        async with gateway_client(root, overrides) as gateway:
            yield gateway


async def test_graphql_answers_empty_with_the_notice(client: httpx.AsyncClient) -> None:
    answer = await graphql(
        client,
        """{ CZ_TYP_ZASTUP { totalCount nodes { NAZ_TYPU } }
             CZ_OKRSEK(first: 10) { totalCount nodes { CIS_OKRSEK } } }""",
    )
    assert "errors" not in answer, answer["errors"]
    assert answer["data"] == {
        "CZ_TYP_ZASTUP": {"totalCount": 0, "nodes": []},
        "CZ_OKRSEK": {"totalCount": 0, "nodes": []},
    }
    codes = {n["upstreamCode"] for n in not_yet(answer["extensions"]["notices"])}
    assert codes == {20}
