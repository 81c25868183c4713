"""FT end to end: GraphQL over HTTP → gateway → OData adapter → replica on a real socket.

Every expected value is computed from the recorded files by tests/resolvers/odata/raw.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from resolvers.odata.replica.server import ODataReplica
from resolvers.replica_kit.faults import Fault
from tests.resolvers.odata import raw
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")


FT_TIMEOUT = 2  # seconds per upstream request (tests/resolvers/odata/conftest.py)


async def _data(client: httpx.AsyncClient, query: str, **variables: Any) -> Any:
    body = await graphql(client, query, variables or None)
    assert "errors" not in body, body
    return body["data"]


async def test_votes_of_one_ballot_with_actor_names_in_two_requests(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    data = await _data(
        client,
        "{ FT_Stemme(where: {afstemningid: {eq: 1}}) "
        "{ totalCount nodes { typeid Aktoer { navn } } } }",
    )
    expected = [r for r in raw.stemme() if r["afstemningid"] == 1]
    got = data["FT_Stemme"]
    assert got["totalCount"] == len(expected)
    assert got["nodes"] == [
        {"typeid": r["typeid"], "Aktoer": {"navn": raw.aktoer()[r["aktoerid"]]["navn"]}}
        for r in expected
    ]
    assert odata_replica.data_requests() <= 3


async def test_page_of_100_votes_with_relations_costs_one_request_per_relation(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    data = await _data(
        client,
        "{ FT_Stemme(first: 100) { nodes { id aktoerid Aktoer { navn } "
        "Afstemning { nummer } Stemmetype { type } } } }",
    )
    nodes = data["FT_Stemme"]["nodes"]
    first = raw.stemme()[:100]
    ballots = {int(r["id"]): r for r in raw.afstemning()}
    assert [n["id"] for n in nodes] == [r["id"] for r in first]
    for node, row in zip(nodes, first, strict=True):
        assert node["Aktoer"]["navn"] == raw.aktoer()[row["aktoerid"]]["navn"]
        assert node["Afstemning"]["nummer"] == int(ballots[row["afstemningid"]]["nummer"])
    # One request for the page and one per relation, whatever the number of rows.
    assert odata_replica.data_requests() == 4


async def test_how_each_member_voted_in_one_ballot(client: httpx.AsyncClient) -> None:
    counts = Counter(r["afstemningid"] for r in raw.stemme())
    ballot = max(counts, key=lambda k: (counts[k], -k))
    data = await _data(
        client,
        "query($id: Int!) { FT_Afstemning(where: {id: {eq: $id}}) { nodes { "
        "Stemme { totalCount nodes { Aktoer { navn } Stemmetype { type } } } } } }",
        id=ballot,
    )
    names = {1: "For", 2: "Imod", 3: "Fravær", 4: "Hverken for eller imod"}
    expected = [
        {
            "Aktoer": {"navn": raw.aktoer()[r["aktoerid"]]["navn"]},
            "Stemmetype": {"type": names[r["typeid"]]},
        }
        for r in raw.stemme()
        if r["afstemningid"] == ballot
    ]
    votes = data["FT_Afstemning"]["nodes"][0]["Stemme"]
    assert votes["totalCount"] == len(expected)
    assert votes["nodes"] == expected


async def test_count_of_votes_per_type(client: httpx.AsyncClient) -> None:
    expected = Counter(r["typeid"] for r in raw.stemme())
    for typeid in (1, 2, 3, 4):
        data = await _data(
            client,
            "query($t: Int) { FT_Stemme(first: 0, where: {typeid: {eq: $t}}) { totalCount } }",
            t=typeid,
        )
        assert data["FT_Stemme"]["totalCount"] == expected[typeid]
    data = await _data(client, "{ FT_Stemme(first: 0) { totalCount } }")
    assert data["FT_Stemme"]["totalCount"] == len(raw.stemme())


async def test_paging_250_rows_with_cursors(client: httpx.AsyncClient) -> None:
    seen: list[int] = []
    after: str | None = None
    pages = 0
    while len(seen) < 250:
        data = await _data(
            client,
            "query($after: String) { FT_Stemme(first: 100, after: $after, "
            "where: {id: {lte: 5000}}) { pageInfo { hasNextPage hasPreviousPage endCursor } "
            "edges { cursor node { id } } } }",
            after=after,
        )
        connection = data["FT_Stemme"]
        seen.extend(edge["node"]["id"] for edge in connection["edges"])
        assert connection["pageInfo"]["hasPreviousPage"] == (pages > 0)
        after = connection["pageInfo"]["endCursor"]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
    expected = [r["id"] for r in raw.stemme() if r["id"] <= 5000]
    assert seen[:250] == expected[:250]
    assert pages == 3 or len(expected) <= 250


async def test_last_and_before_page_backwards(client: httpx.AsyncClient) -> None:
    ids = [r["id"] for r in raw.stemme() if r["afstemningid"] <= 40]
    data = await _data(
        client,
        "{ FT_Stemme(last: 5, where: {afstemningid: {lte: 40}}) "
        "{ pageInfo { hasNextPage hasPreviousPage startCursor } nodes { id } } }",
    )
    connection = data["FT_Stemme"]
    assert [n["id"] for n in connection["nodes"]] == ids[-5:]
    assert connection["pageInfo"]["hasNextPage"] is False
    assert connection["pageInfo"]["hasPreviousPage"] is True
    before = connection["pageInfo"]["startCursor"]
    data = await _data(
        client,
        "query($b: String) { FT_Stemme(last: 3, before: $b, where: {afstemningid: {lte: 40}}) "
        "{ nodes { id } } }",
        b=before,
    )
    assert [n["id"] for n in data["FT_Stemme"]["nodes"]] == ids[-8:-5]


async def test_more_than_the_server_page_cap(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    data = await _data(
        client, "{ FT_Stemme(first: 250) { pageInfo { hasNextPage } nodes { id } } }"
    )
    assert [n["id"] for n in data["FT_Stemme"]["nodes"]] == [r["id"] for r in raw.stemme()[:250]]
    assert data["FT_Stemme"]["pageInfo"]["hasNextPage"] is True
    assert odata_replica.data_requests() == 3  # 100 + 100 + 51 rows via odata.nextLink


@pytest.mark.parametrize(
    "text",
    ["' or 1 eq 1", "' or '1' eq '1", "x') or (1 eq 1", "%27 or 1 eq 1", "a&$top=1", "100%"],
)
async def test_hostile_strings_are_data(client: httpx.AsyncClient, text: str) -> None:
    data = await _data(
        client,
        "query($t: String) { FT_Aktoer(where: {navn: {eq: $t}}) { totalCount nodes { id } } }",
        t=text,
    )
    expected = [i for i, r in sorted(raw.aktoer().items()) if r["navn"] == text]
    assert data["FT_Aktoer"]["totalCount"] == len(expected)
    assert [n["id"] for n in data["FT_Aktoer"]["nodes"]] == expected


@pytest.mark.parametrize("needle", ["NATO's", " & ", "100%"])
async def test_quotes_ampersands_and_percents_match_real_names(
    client: httpx.AsyncClient, needle: str
) -> None:
    data = await _data(
        client,
        "query($t: String) { FT_Aktoer(first: 1000, where: {navn: {contains: $t}}) "
        "{ totalCount nodes { id navn } } }",
        t=needle,
    )
    expected = [
        (i, r["navn"]) for i, r in sorted(raw.aktoer().items()) if needle in (r["navn"] or "")
    ]
    assert expected, "the recorded data has such names"
    assert [(n["id"], n["navn"]) for n in data["FT_Aktoer"]["nodes"]] == expected


async def test_operators_and_boolean_combinations(client: httpx.AsyncClient) -> None:
    rows = raw.stemme()
    data = await _data(
        client,
        """{ FT_Stemme(first: 1000, where: {or: [
              {and: [{aktoerid: {in: [13, 247]}}, {typeid: {neq: 3}}]},
              {typeid: {eq: 4}, afstemningid: {gte: 100, lt: 300}}
            ]}) { totalCount nodes { id } } }""",
    )
    expected = [
        r["id"]
        for r in rows
        if (r["aktoerid"] in (13, 247) and r["typeid"] != 3)
        or (r["typeid"] == 4 and 100 <= r["afstemningid"] < 300)
    ]
    assert data["FT_Stemme"]["totalCount"] == len(expected)
    assert [n["id"] for n in data["FT_Stemme"]["nodes"]] == expected[:1000]


async def test_dates_compare_as_dates_and_order_desc(client: httpx.AsyncClient) -> None:
    data = await _data(
        client,
        '{ FT_Afstemning(first: 20, where: {opdateringsdato: {gte: "2019-06-01T00:00:00", '
        'lt: "2019-07-01T00:00:00"}}, order: [{opdateringsdato: DESC}]) '
        "{ totalCount nodes { id opdateringsdato } } }",
    )
    import datetime as dt

    def moment(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text)

    low, high = dt.datetime(2019, 6, 1), dt.datetime(2019, 7, 1)
    chosen = [r for r in raw.afstemning() if low <= moment(r["opdateringsdato"]) < high]
    chosen.sort(key=lambda r: int(r["id"]))
    chosen.sort(key=lambda r: moment(r["opdateringsdato"]), reverse=True)
    assert data["FT_Afstemning"]["totalCount"] == len(chosen)
    assert [n["id"] for n in data["FT_Afstemning"]["nodes"]] == [int(r["id"]) for r in chosen[:20]]


async def test_ends_with_is_evaluated_in_the_gateway_when_the_upstream_lacks_it(
    odata_replica: ODataReplica,
) -> None:
    with register_subset("FT") as registers:
        overrides = {"FT": {"url": odata_replica.url, "filterFunctions": ["substringof"]}}
        async with gateway_client(registers, overrides) as client:
            data = await _data(
                client,
                '{ FT_Aktoer(first: 50, where: {navn: {endsWith: "sen"}, typeid: {eq: 5}}) '
                "{ totalCount nodes { id } } }",
            )
    expected = [
        i
        for i, r in sorted(raw.aktoer().items())
        if (r["navn"] or "").endswith("sen") and r["typeid"] == 5
    ]
    assert data["FT_Aktoer"]["totalCount"] == len(expected)
    assert [n["id"] for n in data["FT_Aktoer"]["nodes"]] == expected[:50]


async def test_long_in_lists_are_sent_in_chunks(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    wanted = [r["id"] for r in raw.stemme()[::97][:300]]
    data = await _data(
        client,
        "query($ids: [Int]) { FT_Stemme(first: 1000, where: {id: {in: $ids}}) "
        "{ totalCount nodes { id } } }",
        ids=wanted,
    )
    assert [n["id"] for n in data["FT_Stemme"]["nodes"]] == sorted(wanted)
    assert data["FT_Stemme"]["totalCount"] == len(wanted)
    assert all(len(r.params.get("$filter", "")) <= 1800 for r in odata_replica.log)


async def test_to_many_relation_pages_per_parent(client: httpx.AsyncClient) -> None:
    data = await _data(
        client,
        "{ FT_Aktoer(where: {id: {in: [13, 247]}}) { nodes { id "
        "Stemme(first: 2, order: [{afstemningid: DESC}]) { totalCount pageInfo { hasNextPage } "
        "nodes { id afstemningid } } } } }",
    )
    for node in data["FT_Aktoer"]["nodes"]:
        mine = [r for r in raw.stemme() if r["aktoerid"] == node["id"]]
        mine.sort(key=lambda r: r["id"])
        mine.sort(key=lambda r: r["afstemningid"], reverse=True)
        votes = node["Stemme"]
        assert votes["totalCount"] == len(mine)
        assert votes["pageInfo"]["hasNextPage"] is (len(mine) > 2)
        assert votes["nodes"] == [
            {"id": r["id"], "afstemningid": r["afstemningid"]} for r in mine[:2]
        ]


async def test_same_query_twice_hits_the_cache(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    query = "{ FT_Stemme(first: 10) { nodes { id Aktoer { navn } } } }"
    first = await _data(client, query)
    requests = odata_replica.data_requests()
    second = await _data(client, query)
    assert first == second
    assert odata_replica.data_requests() == requests


async def test_concurrent_identical_queries_share_one_upstream_request(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    odata_replica.latency = 0.2
    try:
        query = "{ FT_Afstemning(first: 5) { nodes { id } } }"
        results = await asyncio.gather(*(graphql(client, query) for _ in range(8)))
    finally:
        odata_replica.latency = 0.0
    assert all(r == results[0] for r in results)
    assert odata_replica.data_requests() == 1


async def test_errors_carry_codes_and_the_rest_answers(client: httpx.AsyncClient) -> None:
    body = await graphql(
        client, "{ FT_Stemmetype { nodes { type } } FT_Sambehandlinger { nodes { id } } }"
    )
    assert body["data"]["FT_Stemmetype"]["nodes"][0] == {"type": "For"}
    assert body["data"]["FT_Sambehandlinger"] is None
    (error,) = body["errors"]
    assert error["path"] == ["FT_Sambehandlinger"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ('{ FT_Stemme(after: "bm9wZQ==") { nodes { id } } }', "BAD_USER_INPUT"),
        ('{ FT_Stemme(after: "!!") { nodes { id } } }', "BAD_USER_INPUT"),
        ("{ FT_Stemme(first: 5000) { nodes { id } } }", "BAD_USER_INPUT"),
        ("{ FT_Stemme(first: -1) { nodes { id } } }", "BAD_USER_INPUT"),
        ("{ FT_Stemme(where: {or: []}) { nodes { id } } }", "BAD_USER_INPUT"),
        ('{ FT_Stemme(where: {opdateringsdato: {gt: "yesterday"}}) { nodes { id } } }', None),
        ("{ FT_Stemme { nodes { nope } } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ FT_Stemme { nodes { id } ", "GRAPHQL_PARSE_FAILED"),
    ],
)
async def test_bad_input_gets_a_clear_error(
    client: httpx.AsyncClient, odata_replica: ODataReplica, query: str, code: str | None
) -> None:
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code in (200, 400)
    body = response.json()
    assert body["errors"], body
    error = body["errors"][0]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["extensions"]["code"] == code
    assert odata_replica.data_requests() == 0


async def test_upstream_faults_become_errors_not_crashes(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    breaker = client.app.state.gateway.sources["FT"].guard.breaker  # type: ignore[attr-defined]
    for fault, code in (
        (Fault("status", status=500, times=None), "UPSTREAM_UNAVAILABLE"),
        (Fault("status", status=503, times=None), "UPSTREAM_UNAVAILABLE"),
        (Fault("malformed", times=None), "UPSTREAM_INVALID"),
        (Fault("cut", times=None), "UPSTREAM_UNAVAILABLE"),
        (Fault("drop", times=None), "UPSTREAM_UNAVAILABLE"),
        (Fault("timeout", times=None), "UPSTREAM_TIMEOUT"),
    ):
        odata_replica.faults.clear()
        breaker.success()  # each case starts with a closed circuit
        odata_replica.faults.inject(fault)
        name = f"{fault.kind}{fault.status}"  # a query of its own per case (nothing cached)
        body = await graphql(
            client, f'{{ FT_Aktoer(where: {{navn: {{eq: "{name}"}}}}) {{ nodes {{ id }} }} }}'
        )
        assert body["data"] == {"FT_Aktoer": None}, (fault, body)
        assert body["errors"][0]["extensions"]["code"] == code, (fault, body)
    odata_replica.faults.clear()
    breaker.success()


async def test_a_transient_fault_is_retried(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    odata_replica.faults.inject(Fault("status", status=503, times=1))
    data = await _data(client, "{ FT_Aktoertype(first: 3) { nodes { id } } }")
    assert data["FT_Aktoertype"]["nodes"] == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert [r.status for r in odata_replica.log] == [503, 200]


async def test_the_circuit_opens_after_repeated_failures_and_probes_later(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    guard = client.app.state.gateway.sources["FT"].guard  # type: ignore[attr-defined]
    odata_replica.faults.inject(Fault("status", status=500, times=None))
    for _ in range(2):
        body = await graphql(client, "{ FT_Aktoertype(first: 2) { nodes { id } } }")
        assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert guard.breaker.state == "open"
    seen = len(odata_replica.log)
    body = await graphql(client, "{ FT_Aktoertype(first: 2) { nodes { id } } }")
    assert "circuit open" in body["errors"][0]["message"]
    assert len(odata_replica.log) == seen  # refused without calling the upstream
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["upstreams"]["FT"]["circuit"] == "open"
    odata_replica.faults.clear()
    guard.breaker.opened_at -= guard.breaker.reset  # the reset time has passed
    data = await _data(client, "{ FT_Aktoertype(first: 2) { nodes { id } } }")
    assert data["FT_Aktoertype"]["nodes"] == [{"id": 1}, {"id": 2}]
    assert guard.breaker.state == "closed"
    assert (await client.get("/readyz")).status_code == 200


async def test_register_version_endpoint_get_and_sdl(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/FT/v1", params={"query": "{ FT_Aktoertype(first: 3) { nodes { id } } }"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["FT_Aktoertype"]["nodes"] == [{"id": 1}, {"id": 2}, {"id": 3}]
    sdl = (await client.get("/FT/v1/schema")).text
    assert "type FT_Stemme @securityLevel(level: 0)" in sdl
    assert (await client.get("/FT/v2")).status_code == 404
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
