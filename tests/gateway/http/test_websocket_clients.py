"""WebSocket clients as front ends use them: credentials in ``connection_init``, with gql.

A real uvicorn server on loopback over the FT replica, whose rows are edited live, and gql's
``WebsocketsTransport`` (the ``websockets`` package) speaking ``graphql-transport-ws``:
the schema is fetched through the transport, the caller is authenticated by the
``connection_init`` payload in the forms Apollo Client, urql and graphql-ws send, events
arrive at the caller's level, and refused credentials close the socket with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from graphql import GraphQLSchema, get_introspection_query
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosedError

from gateway.http.app import create_app
from gateway.http.auth import AuthSettings, ConnectionRefused, init_credentials
from gateway.http.config import Settings
from gateway.http.server import RunningServer, serve_asgi
from tests.fixtures import ReplicaFactory
from tests.gateway.events.conftest import registers_with
from tests.support import REGISTERS

pytestmark = pytest.mark.asyncio(loop_scope="function")

TRANSPORT_WS = "graphql-transport-ws"
# Afstemningstype.type is above the anonymous level: level 1 reads it, level 0 does not.
SECURITY = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [{"SecurityLevel": 1, "Entities": ["Afstemningstype.type"]}],
}
CHANGES = gql("subscription { FT_Afstemningstype_changed { nodes { id type } } }")
BY_TYPE = gql(
    'subscription { FT_Afstemningstype_changed(where: {type: {eq: "Ny"}}) { nodes { id } } }'
)


@dataclasses.dataclass
class Live:
    """The server, and the replica whose rows the test edits."""

    server: RunningServer
    replica: Any

    def url(self, path: str = "/FT/v1") -> str:
        return self.server.url.replace("http://", "ws://") + path

    def add_type(self, number: int, name: str) -> dict[str, Any]:
        """A new Afstemningstype row upstream, updated after every recorded one."""
        stamp = f"2031-05-01T10:{number % 60:02d}:00"
        row: dict[str, Any] = self.replica.insert(
            "Afstemningstype", id=number, type=name, opdateringsdato=stamp
        )
        return row


@asynccontextmanager
async def live_gateway(replica_factory: ReplicaFactory) -> AsyncIterator[Live]:
    replica = await replica_factory("odata")
    with registers_with("FT", security={"FT": SECURITY}) as registers:
        settings = Settings(
            registers_dir=registers,
            sources={"FT": {"url": replica.url, "rate": 0, "eventsInterval": 0.1}},
            auth=AuthSettings.demo(),
            rate_limit=None,
        )
        server = await serve_asgi(create_app(settings))
        try:
            yield Live(server, replica)
        finally:
            await server.stop()


def transport(live: Live, payload: dict[str, Any] | None = None, **options: Any) -> Any:
    return WebsocketsTransport(
        url=live.url(options.pop("path", "/FT/v1")),
        init_payload=payload or {},
        subprotocols=[TRANSPORT_WS],
        **options,
    )


async def _first_event(
    session: Any, document: Any, live: Live, row: tuple[int, str]
) -> dict[str, Any]:
    """Subscribe, then add ``row`` upstream until the subscription sees it (the watcher's
    first poll only sets its starting point)."""
    events = session.subscribe(document, get_execution_result=True)
    nxt = asyncio.ensure_future(events.__anext__())
    try:
        for attempt in range(40):
            done, _ = await asyncio.wait({nxt}, timeout=0.25)
            if done:
                try:
                    result = nxt.result()
                except TransportQueryError as exc:  # gql raises for an event with errors
                    return {"data": exc.data, "errors": exc.errors}
                return {"data": result.data, "errors": result.errors}
            if attempt == 4:  # the subscription has started and been polled
                live.add_type(*row)
        raise AssertionError("no event arrived")
    finally:
        nxt.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, TransportQueryError):
            await nxt
        await events.aclose()


@pytest.mark.parametrize(
    "payload",
    [
        {"apiKey": "demo-level-1"},
        {"apikey": "demo-level-1"},
        {"X-API-Key": "demo-level-1"},
        {"headers": {"x-api-key": "demo-level-1"}},
        {"Headers": {"X-Api-Key": "demo-level-1"}, "apiKey": "demo-level-1"},
    ],
)
async def test_a_key_in_connection_init_raises_the_level(
    replica_factory: ReplicaFactory, payload: dict[str, Any]
) -> None:
    async with live_gateway(replica_factory) as live:
        client = Client(transport=transport(live, payload), fetch_schema_from_transport=True)
        async with client as session:
            assert isinstance(client.schema, GraphQLSchema)
            assert "FT_Afstemningstype_changed" in client.schema.subscription_type.fields  # type: ignore[union-attr]
            result = await _first_event(session, CHANGES, live, (90, "Ny"))
    assert result["errors"] is None
    assert result["data"] == {"FT_Afstemningstype_changed": {"nodes": [{"id": 90, "type": "Ny"}]}}


async def test_without_credentials_a_field_above_the_level_is_withheld(
    replica_factory: ReplicaFactory,
) -> None:
    async with live_gateway(replica_factory) as live, Client(transport=transport(live)) as session:
        result = await _first_event(session, CHANGES, live, (91, "Hemmelig"))
        # Filtering on the field is refused at subscribe time: nothing is sent.
        with pytest.raises(TransportQueryError) as refused:
            async for _ in session.subscribe(BY_TYPE):
                pass
    assert result["data"] == {"FT_Afstemningstype_changed": {"nodes": [{"id": 91, "type": None}]}}
    assert [e["extensions"]["code"] for e in result["errors"]] == ["FORBIDDEN"]
    assert result["errors"][0]["path"] == ["FT_Afstemningstype_changed", "nodes", 0, "type"]
    assert "Hemmelig" not in json.dumps(result)
    assert refused.value.errors is not None
    assert refused.value.errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_bad_key_in_connection_init_is_refused_with_a_reason(
    replica_factory: ReplicaFactory,
) -> None:
    async with live_gateway(replica_factory) as live:
        for payload, code, words in [
            ({"apiKey": "demo-level-9"}, 4401, "unknown API key"),
            ({"Authorization": "Bearer not-a-token"}, 4401, "bearer tokens are not accepted"),
            ({"authorization": "demo-level-1"}, 4401, "'Bearer <token>'"),
            ({"apiKey": 1}, 4400, "must be a string"),
            ({"apiKey": "demo-level-1", "X-API-Key": "demo-level-2"}, 4400, "twice"),
        ]:
            socket = await websockets.connect(
                live.url(), subprotocols=[websockets.Subprotocol(TRANSPORT_WS)]
            )
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(ConnectionClosedError):
                await socket.recv()
            assert socket.close_code == code, payload
            assert socket.close_reason is not None
            assert words in socket.close_reason, payload
        # gql reports the close, with its code and reason, rather than a level-0 session.
        with pytest.raises(TransportConnectionFailed) as failed:
            async with Client(transport=transport(live, {"apiKey": "wrong-key"})) as session:
                await session.execute(gql("{ __typename }"))
        cause = failed.value.__cause__
        assert isinstance(cause, ConnectionClosedError)
        assert cause.rcvd is not None
        assert (cause.rcvd.code, cause.rcvd.reason) == (4401, "Unauthorized: unknown API key")


async def test_handshake_and_payload_credentials_must_agree(
    replica_factory: ReplicaFactory,
) -> None:
    async with live_gateway(replica_factory) as live:
        for query, payload, closed in [
            ("?apikey=demo-level-1", {"apiKey": "demo-level-1"}, None),
            ("?APIKEY=demo-level-1", {}, None),
            ("?apiKey=demo-level-1", {"apiKey": "demo-level-2"}, 4401),
        ]:
            socket = await websockets.connect(
                live.url("/FT/v1" + query), subprotocols=[websockets.Subprotocol(TRANSPORT_WS)]
            )
            try:
                await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
                if closed is not None:
                    with pytest.raises(ConnectionClosedError):
                        await socket.recv()
                    assert socket.close_code == closed
                    continue
                assert json.loads(await socket.recv()) == {"type": "connection_ack"}
            finally:
                await socket.close()


async def test_init_credentials_read_every_common_form() -> None:
    assert init_credentials({"apiKey": "k"}) == {"x-api-key": "k"}
    assert init_credentials({"API_KEY": "k"}) == {"x-api-key": "k"}
    assert init_credentials({"Authorization": "Bearer t"}) == {"authorization": "Bearer t"}
    assert init_credentials({"headers": {"Authorization": "Bearer t"}}) == {
        "authorization": "Bearer t"
    }
    assert init_credentials({"apiKey": None, "other": 1}) == {}
    assert ConnectionRefused(4401, "ø" * 100).reason.encode() == ("ø" * 61).encode()


# -- the whole schema's introspection ------------------------------------------------------

# The max_size docs/clients.md tells WebSocket clients to set for /graphql.
DOCUMENTED_MAX_SIZE = 4 * 2**20


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def every_register() -> AsyncIterator[tuple[RunningServer, Starlette]]:
    # Introspection contacts no upstream: the shipped registers as they are.
    app = create_app(Settings(registers_dir=REGISTERS, rate_limit=None))
    server = await serve_asgi(app)
    try:
        yield server, app
    finally:
        await server.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_the_whole_schema_needs_the_documented_max_size(
    every_register: tuple[RunningServer, Starlette],
) -> None:
    server, app = every_register
    url = server.url.replace("http://", "ws://") + "/graphql"

    def client(**connect: Any) -> Client:
        socket = WebsocketsTransport(url=url, subprotocols=[TRANSPORT_WS], connect_args=connect)
        return Client(transport=socket, fetch_schema_from_transport=True)

    # The websockets client's default (1 MiB) is too small for every register at once ...
    with pytest.raises(TransportConnectionFailed) as failed:
        async with client() as session:
            await session.execute(gql("{ __typename }"))
    cause = failed.value.__cause__
    assert isinstance(cause, ConnectionClosedError)
    assert cause.sent is not None
    assert cause.sent.code == 1009  # message too big
    # ... the documented one holds it.
    async with client(max_size=DOCUMENTED_MAX_SIZE) as session:
        schema = session.client.schema
        assert schema is not None
        answer = await session.execute(gql("{ __typename }"))
    assert answer == {"__typename": "Query"}
    expected = {
        entity.graphql_name
        for register in app.state.gateway.report.registers
        for entity in register.datamodel.entities.values()
    }
    assert schema.query_type is not None
    assert expected <= set(schema.query_type.fields)


@pytest.mark.asyncio(loop_scope="module")
async def test_descriptions_are_given_once(every_register: tuple[RunningServer, Starlette]) -> None:
    async with httpx.AsyncClient(base_url=every_register[0].url) as http:
        response = await http.post("/graphql", json={"query": get_introspection_query()})
    types = {t["name"]: t for t in response.json()["data"]["__schema"]["types"]}
    stemme = types["FT_Stemme"]["fields"]
    assert next(f for f in stemme if f["name"] == "aktoerid")["description"]
    # The filter input's fields are the entity's: described there only.
    filters = [t for name, t in types.items() if name.endswith("FilterInput") and "_" in name]
    assert filters
    assert all(f["description"] is None for t in filters for f in t["inputFields"])
    # Paging arguments are described on the root fields, not on every relation again.
    root = {f["name"]: f for f in types["Query"]["fields"]}
    assert {a["name"]: a["description"] for a in root["FT_Stemme"]["args"]}["first"]
    relation = next(f for f in types["FT_Afstemning"]["fields"] if f["name"] == "Stemme")
    paging = [a for a in relation["args"] if a["name"] in ("first", "after", "last", "before")]
    assert len(paging) == 4
    assert all(a["description"] is None for a in paging)
