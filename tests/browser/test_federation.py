"""The gateway's ``/FT/v1`` composed into a supergraph by Apollo's own tools (npm).

``tests/node/federation.mjs`` fetches the subgraph SDL, serves a second subgraph that adds
``note`` to ``FT_Aktoer`` (and a root field of references to actors), composes both with
``@apollo/composition`` and runs one query through ``@apollo/gateway``. The router's answer
is checked against the recorded FT files, and the requests the gateway received against
what the router had to ask it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser.conftest import Served, last_json, run_node
from tests.resolvers.odata import raw

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUERY = """
query Joined {
  favourites { id navn note }
  FT_Stemme(first: 3, where: {afstemningid: {eq: %d}}) {
    nodes { id Aktoer { id navn note } }
  }
}
"""


def _entity_requests(served: Served) -> list[dict[str, Any]]:
    out = []
    for seen in served.log.seen:
        if seen.path == "/FT/v1" and "_entities" in str(seen.params().get("query")):
            out.append({"params": seen.params(), "answer": json.loads(seen.answer)})
    return out


async def test_a_router_joins_the_gateway_and_a_second_subgraph(served: Served) -> None:
    actors = raw.aktoer()
    # The newest ballot whose first three votes were cast by recorded actors.
    ballot, votes = max(
        (b, vs[:3])
        for b in {r["afstemningid"] for r in raw.stemme()}
        for vs in [[r for r in raw.stemme() if r["afstemningid"] == b]]
        if len(vs) >= 3 and all(v["aktoerid"] in actors for v in vs[:3])
    )
    # Favourites the second subgraph names by key only: the router asks the gateway for navn.
    favourites = sorted(actors)[:2]
    notes = {
        str(i): f"note on {actors[i]['navn']}"
        for i in {*favourites, *(v["aktoerid"] for v in votes)}
    }
    spec = {
        "subgraph": served.url + "/FT/v1",
        "entity": "FT_Aktoer",
        "notes": notes,
        "favourites": favourites,
        "query": QUERY % ballot,
    }
    served.log.seen.clear()
    code, out, err = await run_node("federation.mjs", json.dumps(spec))
    result = last_json(out)
    assert result["composed"], result
    assert code == 0, out + err
    assert result["errors"] is None
    assert result["data"] == {
        "favourites": [
            {"id": i, "navn": actors[i]["navn"], "note": notes[str(i)]} for i in favourites
        ],
        "FT_Stemme": {
            "nodes": [
                {
                    "id": v["id"],
                    "Aktoer": {
                        "id": v["aktoerid"],
                        "navn": actors[v["aktoerid"]]["navn"],
                        "note": notes[str(v["aktoerid"])],
                    },
                }
                for v in votes
            ]
        },
    }
    # The second subgraph was asked for the voters by their key (the router's _entities).
    assert {a["id"] for a in result["asked"]} == {v["aktoerid"] for v in votes}
    assert {a["__typename"] for a in result["asked"]} == {"FT_Aktoer"}
    # The gateway: the SDL once, then the router's _entities for the favourites, answered.
    assert any(
        "_service" in str(s.params().get("query")) for s in served.log.seen if s.path == "/FT/v1"
    )
    (request,) = _entity_requests(served)
    representations = request["params"]["variables"]["representations"]
    assert representations == [{"__typename": "FT_Aktoer", "id": i} for i in favourites]
    assert request["answer"]["data"]["_entities"] == [
        {"navn": actors[i]["navn"]} for i in favourites
    ]
