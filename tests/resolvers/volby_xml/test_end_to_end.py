"""CZ and CZPREZ through the gateway's GraphQL endpoint, against the replica on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.server import serve_asgi
from resolvers.volby_xml.replica.server import Fault, VolbyReplica
from tests.resolvers.volby_xml.conftest import DATA
from tests.resolvers.volby_xml.raw import (
    batch_files,
    children,
    council,
    newest_precincts,
    party_votes,
    root_of,
)
from tests.support import gateway_client, graphql, register_subset


@pytest.fixture
async def client(volby_replica: VolbyReplica) -> AsyncIterator[httpx.AsyncClient]:
    with register_subset("CZ", "CZPREZ") as root:
        async with gateway_client(root, volby_replica.overrides) as gateway:
            yield gateway


async def ask(client: httpx.AsyncClient, document: str) -> dict[str, Any]:
    answer = await graphql(client, document)
    assert "errors" not in answer, answer["errors"]
    data: dict[str, Any] = answer["data"]
    return data


async def test_praha_2014_through_council_districts_and_parties(client: httpx.AsyncClient) -> None:
    data = await ask(
        client,
        """{ CZ_OBEC(first: 1, where: {KODZASTUP: {eq: "554782"}, volby: {eq: "kv2014"}}) {
             nodes { NAZEVZAST POCET_OBVODU
               OBVOD(first: 10) { nodes { CIS_OBVODU
                 VOLEBNI_STRANA(first: 40) { nodes { POR_STR_HLAS_LIST HLASY } } } } } } }""",
    )
    (praha,) = data["CZ_OBEC"]["nodes"]
    assert praha["NAZEVZAST"] == "Praha hl.m."
    got = {
        (district["CIS_OBVODU"], party["POR_STR_HLAS_LIST"]): party["HLASY"]
        for district in praha["OBVOD"]["nodes"]
        for party in district["VOLEBNI_STRANA"]["nodes"]
    }
    assert got == party_votes(council(DATA / "kv2014" / "CZ0100.xml", "554782"))
    assert len(praha["OBVOD"]["nodes"]) == praha["POCET_OBVODU"] == 7


async def test_brno_bohunice_2022_parties_and_councillors(client: httpx.AsyncClient) -> None:
    data = await ask(
        client,
        """{ CZ_VOLEBNI_STRANA(first: 100,
                               where: {KODZASTUP: {eq: "551082"}, volby: {eq: "kv2022"}})
             { nodes { POR_STR_HLAS_LIST VSTRANA HLASY HLASY_PROC
                       ZASTUPITEL(first: 50) { nodes { PORADOVE_CISLO PRIJMENI } } } } }""",
    )
    obec = council(DATA / "kv2022" / "obec_551082.xml", "551082")
    parties = children(children(obec, "VYSLEDEK")[0], "VOLEBNI_STRANA")
    expected = {
        int(p.get("POR_STR_HLAS_LIST", "")): (
            p.get("VSTRANA"),
            int(p.get("HLASY", "")),
            float(p.get("HLASY_PROC", "")),
            sorted(z.get("PRIJMENI", "") for z in children(p, "ZASTUPITEL")),
        )
        for p in parties
    }
    got = {
        n["POR_STR_HLAS_LIST"]: (
            n["VSTRANA"],
            n["HLASY"],
            n["HLASY_PROC"],
            sorted(z["PRIJMENI"] for z in n["ZASTUPITEL"]["nodes"]),
        )
        for n in data["CZ_VOLEBNI_STRANA"]["nodes"]
    }
    assert got == expected


async def test_ostrava_names_keep_their_letters(client: httpx.AsyncClient) -> None:
    data = await ask(
        client,
        """{ CZ_OBEC(first: 100, where: {NUTS: {eq: "CZ0806"}, volby: {eq: "kv2014"}})
             { totalCount nodes { NAZEVZAST } } }""",
    )
    expected = sorted(
        o.get("NAZEVZAST", "") for o in children(root_of(DATA / "kv2014" / "CZ0806.xml"), "OBEC")
    )
    assert sorted(n["NAZEVZAST"] for n in data["CZ_OBEC"]["nodes"]) == expected
    assert data["CZ_OBEC"]["totalCount"] == 36


async def test_presidential_precincts_after_all_batches(client: httpx.AsyncClient) -> None:
    data = await ask(
        client,
        """{ CZPREZ_OKRSEK(first: 1000) { totalCount nodes {
               KOLO CIS_OBEC CIS_OKRSEK PORADI_ZPRAC OPAKOVANE PLATNE_HLASY
               HLASY_OKRSEK(first: 20) { nodes { PORADOVE_CISLO HLASY } } } }
             CZPREZ_PRUBEH { nodes { KOLO DAVKY_NACTENE POSLEDNI_DAVKA } } }""",
    )
    got = {
        (n["KOLO"], n["CIS_OBEC"], n["CIS_OKRSEK"]): {
            "PORADI_ZPRAC": n["PORADI_ZPRAC"],
            "OPAKOVANE": n["OPAKOVANE"],
            "PLATNE_HLASY": n["PLATNE_HLASY"],
            "votes": {v["PORADOVE_CISLO"]: v["HLASY"] for v in n["HLASY_OKRSEK"]["nodes"]},
        }
        for n in data["CZPREZ_OKRSEK"]["nodes"]
    }
    assert got == newest_precincts(batch_files())
    progress = {
        n["KOLO"]: (n["DAVKY_NACTENE"], n["POSLEDNI_DAVKA"]) for n in data["CZPREZ_PRUBEH"]["nodes"]
    }
    assert progress == {1: (5, 49), 2: (2, 30)}


async def test_errors_and_cost_notices(
    client: httpx.AsyncClient, volby_replica: VolbyReplica
) -> None:
    answer = await graphql(
        client, '{ CZ_OBEC(where: {NUTS: {eq: "CZ9999"}}) { nodes { KODZASTUP } } }'
    )
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    volby_replica.faults.inject(Fault("status", match="/vysledky?", status=503, times=None))
    answer = await graphql(
        client, '{ CZ_TYP_ZASTUP(where: {volby: {eq: "kv2014"}}) { nodes { NAZ_TYPU } } }'
    )
    volby_replica.faults.clear()
    assert answer["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    # The failures opened the circuit; the upstream is back, and so is the circuit.
    client.app.state.gateway.sources["CZ"].guard.breaker.success()  # type: ignore[attr-defined]
    answer = await graphql(client, "{ CZ_OBEC(first: 5) { nodes { KODZASTUP } } }")
    notices = answer["extensions"]["notices"]
    assert any(n["code"] == "UPSTREAM_COST" and n["fanout"] for n in notices)


HOSTILE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE VYSLEDKY [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
    b'<VYSLEDKY xmlns="http://www.volby.cz/kv/">'
    b'<TYP_ZASTUP OZNAC_TYPU="&c;" NAZ_TYPU="x"/></VYSLEDKY>'
)


async def test_a_hostile_upstream_document_is_an_error() -> None:
    async def hostile(request: Request) -> Response:
        return Response(HOSTILE, media_type="application/xml")

    server = await serve_asgi(Starlette(routes=[Route("/pls/{election}/{document}", hostile)]))
    try:
        with register_subset("CZ") as root:
            async with gateway_client(root, {"CZ": {"url": server.url}}) as gateway:
                answer = await graphql(
                    gateway,
                    '{ CZ_TYP_ZASTUP(where: {volby: {eq: "kv2014"}}) { nodes { OZNAC_TYPU } } }',
                )
    finally:
        await server.stop()
    assert answer["errors"][0]["extensions"]["code"] == "UPSTREAM_INVALID"
    assert "aaaa" not in str(answer)
