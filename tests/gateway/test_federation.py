"""Every register version's endpoint as an Apollo Federation 2 subgraph.

The SDL of every shipped register (a ``@key`` per entity from its datamodel key), and over a
real loopback gateway in front of the FT replica: ``_entities`` batched (one upstream
request per entity type, counted in the replica's log), security levels inside
``_entities`` (FT served with ``Stemme`` at level 2 and ``Aktør.biografi`` at level 1, the
denied data never fetched), bad representations, and the limits. Expected rows come from
the recorded FT files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import pytest_asyncio
from graphql import (
    ObjectTypeDefinitionNode,
    SchemaExtensionNode,
    StringValueNode,
    build_ast_schema,
    parse,
    print_ast,
)

from gateway.dls.descriptors import load_registers
from gateway.graphql.federation import FEDERATION_URL, subgraph_sdl
from gateway.graphql.limits import LimitSettings
from gateway.graphql.schema import SchemaSpec, build_schema
from gateway.http.app import create_app
from gateway.http.auth import AuthSettings
from gateway.http.config import Settings
from gateway.http.server import RunningServer, serve_asgi
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata import raw
from tests.support import REGISTERS

on_loop = pytest.mark.asyncio(loop_scope="module")

SECURITY = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [
        {"SecurityLevel": 1, "Entities": ["Aktør.biografi"]},
        {"SecurityLevel": 2, "Entities": ["Stemme"]},
    ],
}

# What a router knows of the federation directives it imports (the spec's definitions).
FEDERATION_DEFINITIONS = """
scalar link__Import
scalar federation__FieldSet
directive @link(url: String!, import: [link__Import]) repeatable on SCHEMA
directive @key(fields: federation__FieldSet!, resolvable: Boolean = true) repeatable on OBJECT
directive @shareable repeatable on OBJECT | FIELD_DEFINITION
"""

ENTITIES = """
query Entities($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on FT_Aktoer { id navn }
    ... on FT_Afstemning { id nummer }
    ... on FT_Stemme { id Aktoer { navn } }
  }
}
"""


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registers")
    shutil.copytree(REGISTERS / "FT", root / "FT")
    model = root / "FT" / "rc00001" / "3. Security" / "Security_Model.json"
    model.write_text(json.dumps(SECURITY), encoding="utf-8")
    return root


class Served:
    """The gateway on loopback, its replica, and a client."""

    def __init__(self, server: RunningServer, replica: ODataReplica, app: Any) -> None:
        self.server = server
        self.replica = replica
        self.app = app
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def post(
        self, query: str, variables: Any = None, level: int = 0, path: str = "/FT/v1", **more: Any
    ) -> dict[str, Any]:
        headers = {"x-api-key": f"demo-level-{level}"} if level else {}
        body = {"query": query, "variables": variables, **more}
        response = await self.http.post(path, json=body, headers=headers)
        answer: dict[str, Any] = response.json()
        return answer

    def upstream(self, since: int) -> list[str]:
        """The entity sets the replica was asked for since ``since``."""
        return [r.path.rsplit("/", 1)[-1] for r in self.replica.log.since(since)]

    def selects(self, since: int) -> list[str]:
        return [unquote(r.params.get("$select", "")) for r in self.replica.log.since(since)]


async def _serve(
    registers: Path, replica: ODataReplica, **settings: Any
) -> tuple[RunningServer, Any]:
    app = create_app(
        Settings(
            registers_dir=registers,
            sources={"FT": {"url": replica.url, "rate": 0, "timeout": 5}},
            auth=AuthSettings.demo(),
            rate_limit=None,
            **settings,
        )
    )
    return await serve_asgi(app, "127.0.0.1", 0), app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(registers: Path) -> AsyncIterator[Served]:
    async with ODataReplica() as replica:
        server, app = await _serve(registers, replica)
        gateway = Served(server, replica, app)
        try:
            yield gateway
        finally:
            await gateway.http.aclose()
            await server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(served: Served) -> Served:
    await served.app.state.gateway.runtime.cache.clear()
    return served


def _representations(name: str, ids: list[Any]) -> list[dict[str, Any]]:
    return [{"__typename": name, "id": i} for i in ids]


# --- the subgraph SDL ----------------------------------------------------------------------


def test_every_register_s_subgraph_sdl_has_a_key_per_entity_and_builds() -> None:
    report = load_registers(REGISTERS)
    assert {r.name for r in report.registers} >= {"FT", "VALG", "CZ", "DE", "CZPREZ"}
    for register in report.registers:
        sdl = subgraph_sdl(build_schema(SchemaSpec([register], federated=True)))
        document = parse(sdl)
        (link,) = [d for d in document.definitions if isinstance(d, SchemaExtensionNode)]
        (directive,) = link.directives
        arguments = {a.name.value: a.value for a in directive.arguments}
        assert directive.name.value == "link"
        url = arguments["url"]
        assert isinstance(url, StringValueNode)
        assert url.value == FEDERATION_URL
        assert url.value.startswith("https://specs.apollo.dev/federation/v2.")
        assert "@key" in print_ast(arguments["import"])
        objects = {
            d.name.value: d for d in document.definitions if isinstance(d, ObjectTypeDefinitionNode)
        }
        own = [*register.datamodel.entities.values()]
        if register.events is not None:
            own.append(register.events)  # FT_Events, the recorded events
        for entity in own:
            keys = [
                print_ast(d)
                for d in objects[entity.graphql_name].directives
                if d.name.value == "key"
            ]
            assert keys == [f'@key(fields: "{" ".join(entity.key)}")'], entity.graphql_name
        shared = [d.name.value for d in objects["PageInfo"].directives]
        assert shared == ["shareable"]
        # The federation fields and types are the router's, not part of the subgraph SDL.
        assert {"_Service", "_Entity", "_Any"}.isdisjoint(objects)
        assert "_Any" not in sdl
        assert {f.name.value for f in objects["Query"].fields} == {e.graphql_name for e in own}
        # With the spec's directive definitions, it is a valid schema.
        build_ast_schema(parse(FEDERATION_DEFINITIONS + sdl))


@on_loop
async def test_the_endpoint_serves_its_sdl_and_graphql_is_not_a_subgraph(
    gateway: Served,
) -> None:
    answer = await gateway.post("{ _service { sdl } }")
    schema = gateway.app.state.gateway.schema_for("/FT/v1")
    assert answer["data"]["_service"]["sdl"] == subgraph_sdl(schema)
    assert '@key(fields: "id")' in answer["data"]["_service"]["sdl"]
    assert "directive @key" not in answer["data"]["_service"]["sdl"]  # imported by @link
    # The endpoint's own SDL (what introspection shows) stands alone, @key defined in it.
    own = (await gateway.http.get("/FT/v1/schema")).text
    assert "directive @key(fields: String!) repeatable on OBJECT" in own
    built = build_ast_schema(parse(own))
    assert {"_service", "_entities", "FT_Aktoer"} <= set(built.query_type.fields)  # type: ignore[union-attr]
    merged = await gateway.post("{ _service { sdl } }", path="/graphql")
    assert merged["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "_service" in merged["errors"][0]["message"]


# --- _entities -----------------------------------------------------------------------------


@on_loop
async def test_entities_are_one_upstream_request_per_type_in_the_order_asked(
    gateway: Served,
) -> None:
    actors = raw.aktoer()
    ballots = {int(r["id"]): r for r in raw.afstemning() if r["id"] is not None}
    votes = {r["id"]: r for r in raw.stemme() if r["aktoerid"] in actors}
    actor_ids = sorted(actors)[:4]
    ballot_ids = sorted(ballots)[:3]
    vote_ids = sorted(votes)[:5]
    missing = max(actors) + 1000
    wanted = [
        *_representations("FT_Aktoer", [*actor_ids, actor_ids[0], missing]),
        *_representations("FT_Afstemning", ballot_ids),
        *_representations("FT_Stemme", vote_ids),
    ]
    mark = len(gateway.replica.log)
    answer = await gateway.post(ENTITIES, {"representations": wanted}, level=2)
    assert "errors" not in answer, answer
    expected: list[Any] = [
        {"__typename": "FT_Aktoer", "id": i, "navn": actors[i]["navn"]}
        for i in [*actor_ids, actor_ids[0]]
    ]
    expected.append(None)  # no such actor
    expected += [
        {"__typename": "FT_Afstemning", "id": i, "nummer": int(ballots[i]["nummer"])}
        for i in ballot_ids
    ]
    expected += [
        {
            "__typename": "FT_Stemme",
            "id": i,
            "Aktoer": {"navn": actors[votes[i]["aktoerid"]]["navn"]},
        }
        for i in vote_ids
    ]
    assert answer["data"]["_entities"] == expected
    # One request per entity type, and one for the relation below all the votes.
    assert sorted(gateway.upstream(mark)) == sorted(["Aktør", "Afstemning", "Stemme", "Aktør"])


@on_loop
async def test_entities_pass_the_cost_estimate_and_are_metered(gateway: Served) -> None:
    actor_ids = sorted(raw.aktoer())[:3]
    vote_ids = sorted(r["id"] for r in raw.stemme() if r["aktoerid"] in raw.aktoer())[:2]
    wanted = [
        *_representations("FT_Aktoer", actor_ids),
        *_representations("FT_Stemme", vote_ids),
    ]
    answer = await gateway.post(
        ENTITIES, {"representations": wanted}, level=2, extensions={"cost": True}
    )
    cost = answer["extensions"]["cost"]
    # _entities, then per representation __typename, and per type what is selected on it:
    # FT_Aktoer {id navn}; FT_Stemme {id Aktoer {navn}}.
    assert cost["estimated"] == 1 + len(wanted) + 2 * len(actor_ids) + 3 * len(vote_ids)
    # Rows × fields: 3 actors × 2, 2 votes × 2 (id, Aktoer), 2 voters × 1.
    assert cost["actual"] == 2 * len(actor_ids) + 2 * len(vote_ids) + len(vote_ids)


@on_loop
async def test_too_many_representations_are_refused_before_any_upstream_request(
    gateway: Served,
) -> None:
    bound = LimitSettings().max_representations
    mark = len(gateway.replica.log)
    wanted = _representations("FT_Aktoer", list(range(1, bound + 2)))
    answer = await gateway.post(ENTITIES, {"representations": wanted})
    (error,) = answer["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "representations",
        "allowed": bound,
        "measured": bound + 1,
    }
    assert answer.get("data") is None
    assert gateway.upstream(mark) == []


# --- levels --------------------------------------------------------------------------------


@on_loop
async def test_an_entity_above_the_caller_s_level_is_refused_unfetched(gateway: Served) -> None:
    actor = min(raw.aktoer())
    votes = sorted(r["id"] for r in raw.stemme())[:3]
    wanted = [*_representations("FT_Stemme", votes), *_representations("FT_Aktoer", [actor])]
    for level in (0, 1):
        await gateway.app.state.gateway.runtime.cache.clear()
        mark = len(gateway.replica.log)
        answer = await gateway.post(ENTITIES, {"representations": wanted}, level=level)
        assert answer["data"]["_entities"] == [
            None,
            None,
            None,
            {"__typename": "FT_Aktoer", "id": actor, "navn": raw.aktoer()[actor]["navn"]},
        ]
        (error,) = answer["errors"]
        assert error["extensions"] == {"code": "FORBIDDEN", "requiredLevel": 2, "count": 3}
        assert error["path"] == ["_entities", 0]
        assert f"the caller has level {level}" in error["message"]
        assert gateway.upstream(mark) == ["Aktør"]  # Stemme was never asked for


@on_loop
async def test_a_field_above_the_caller_s_level_is_null_and_forbidden(gateway: Served) -> None:
    actors = raw.aktoer()
    ids = sorted(i for i, a in actors.items() if a["biografi"])[:2]
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
        ... on FT_Aktoer { navn biografi } } }"""
    mark = len(gateway.replica.log)
    low = await gateway.post(query, {"r": _representations("FT_Aktoer", ids)})
    assert low["data"]["_entities"] == [{"navn": actors[i]["navn"], "biografi": None} for i in ids]
    (error,) = low["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredLevel": 1, "count": 2}
    assert error["path"] == ["_entities", 0, "biografi"]
    (select,) = gateway.selects(mark)
    assert "biografi" not in select.split(",")  # not even fetched
    high = await gateway.post(query, {"r": _representations("FT_Aktoer", ids)}, level=1)
    assert "errors" not in high
    assert high["data"]["_entities"] == [
        {"navn": actors[i]["navn"], "biografi": actors[i]["biografi"]} for i in ids
    ]


# --- bad representations -------------------------------------------------------------------


@on_loop
async def test_bad_representations_get_clear_errors_and_the_others_are_answered(
    gateway: Served,
) -> None:
    actor = min(raw.aktoer())
    wanted: list[Any] = [
        {"__typename": "FT_Nothing", "id": 1},
        {"__typename": "FT_Aktoer"},
        {"__typename": "FT_Aktoer", "id": "not a number"},
        {"id": actor},
        "FT_Aktoer",
        {"__typename": "FT_Aktoer", "id": str(actor)},
    ]
    mark = len(gateway.replica.log)
    answer = await gateway.post(ENTITIES, {"representations": wanted})
    assert answer["data"]["_entities"] == [
        None,
        None,
        None,
        None,
        None,
        {"__typename": "FT_Aktoer", "id": actor, "navn": raw.aktoer()[actor]["navn"]},
    ]
    errors = {tuple(e["path"]): e for e in answer["errors"]}
    assert set(errors) == {("_entities", i) for i in range(5)}
    assert {e["extensions"]["code"] for e in errors.values()} == {"BAD_USER_INPUT"}
    unknown = errors[("_entities", 0)]["message"]
    assert "'FT_Nothing' is not an entity of this subgraph" in unknown
    assert "FT_Aktoer" in unknown
    missing = errors[("_entities", 1)]
    assert missing["extensions"]["missing"] == ["id"]
    assert '@key(fields: "id")' in missing["message"]
    assert "FT_Aktoer.id is of type Int" in errors[("_entities", 2)]["message"]
    assert "__typename" in errors[("_entities", 3)]["message"]
    assert "__typename" in errors[("_entities", 4)]["message"]
    assert gateway.upstream(mark) == ["Aktør"]


@on_loop
async def test_without_introspection_the_sdl_is_not_published(
    registers: Path, served: Served
) -> None:
    server, _app = await _serve(registers, served.replica, introspection=False)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/FT/v1", json={"query": "{ _service { sdl } }"})
    finally:
        await server.stop()
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "introspection" in error["message"]


@on_loop
async def test_with_per_level_schemas_the_subgraph_is_the_caller_s_level(
    registers: Path, served: Served
) -> None:
    server, _app = await _serve(registers, served.replica, per_level_schema=True)
    vote = min(r["id"] for r in raw.stemme())
    query = "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }"
    body = {"query": query, "variables": {"r": _representations("FT_Stemme", [vote])}}
    sdl = "{ _service { sdl } }"
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            low_sdl = (await http.post("/FT/v1", json={"query": sdl})).json()
            low = (await http.post("/FT/v1", json=body)).json()
            key = {"x-api-key": "demo-level-2"}
            high_sdl = (await http.post("/FT/v1", json={"query": sdl}, headers=key)).json()
            high = (await http.post("/FT/v1", json=body, headers=key)).json()
    finally:
        await server.stop()
    assert "type FT_Stemme " not in low_sdl["data"]["_service"]["sdl"]
    assert (
        'type FT_Stemme @securityLevel(level: 2) @key(fields: "id")'
        in (high_sdl["data"]["_service"]["sdl"])
    )
    assert low["data"]["_entities"] == [None]
    (error,) = low["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "'FT_Stemme' is not an entity of this subgraph" in error["message"]
    assert high == {"data": {"_entities": [{"__typename": "FT_Stemme"}]}}
