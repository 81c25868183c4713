"""The WebSocket side: graphql-transport-ws only, credentials, limits, the schema's fields."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from gateway.sources.kinds import event_entities
from tests.gateway.events.conftest import bus, eventually, registers_with, running_gateway
from tests.gateway.events.wsclient import (
    LEGACY_WS,
    TRANSPORT_WS,
    AsgiWebSocket,
    ClosedError,
    graphql_ws,
)
from tests.support import graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "events-protocol-key-0123456789abcdef"
LIMIT = 2
CHANGES = "subscription { DE_Wahlparameter_changed { id nodes { wahl } } }"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app() -> AsyncIterator[Starlette]:
    # DE read from the recorded folder: nothing to start, and nothing changes there.
    auth = AuthSettings(keys=(ApiKey("protocol", 1, hash_key(KEY)),))
    with registers_with("DE", "CZPREZ") as registers:
        async with running_gateway(
            registers,
            {"DE": {"eventsInterval": 0.1}},
            auth=auth,
            max_subscriptions_per_connection=LIMIT,
        ) as running:
            yield running


async def test_the_legacy_protocol_is_refused(app: Starlette) -> None:
    socket = AsgiWebSocket(app, subprotocols=(LEGACY_WS,))
    await socket.connect()
    try:
        assert socket.subprotocol is None
        with pytest.raises(ClosedError) as closed:
            await socket.receive_json()
        assert closed.value.code == 4406
    finally:
        await socket.aclose()


async def test_the_transport_protocol_is_chosen_among_several(app: Starlette) -> None:
    socket = AsgiWebSocket(app, subprotocols=(LEGACY_WS, TRANSPORT_WS))
    await socket.connect()
    try:
        assert socket.subprotocol == TRANSPORT_WS
    finally:
        await socket.aclose()


async def test_bad_credentials_close_the_socket(app: Starlette) -> None:
    socket = AsgiWebSocket(app, headers={"x-api-key": "not-a-key-of-ours-0123456789"})
    with pytest.raises(ClosedError) as closed:
        await socket.connect()
    assert closed.value.code == 4401
    await socket.aclose()


async def test_subscribing_before_the_handshake_is_refused(app: Starlette) -> None:
    socket = AsgiWebSocket(app)
    await socket.connect()
    try:
        await socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": CHANGES}})
        with pytest.raises(ClosedError) as closed:
            await socket.receive_json()
        assert closed.value.code == 4401
    finally:
        await socket.aclose()


async def test_subscriptions_per_connection_are_limited(app: Starlette) -> None:
    async with graphql_ws(app, headers={"x-api-key": KEY}) as ws:
        accepted = [await ws.subscribe(CHANGES) for _ in range(LIMIT)]
        refused = await ws.subscribe(CHANGES)
        message = await ws.message(refused)
        assert message["type"] == "error"
        assert "limit" in message["payload"][0]["message"]
        await eventually(lambda: bus(app).ready("DE", "Wahlparameter"))
        # Ending one makes room for another.
        await ws.complete(accepted[0])
        again = await ws.subscribe(CHANGES)
        with pytest.raises(TimeoutError):
            await ws.message(again, seconds=0.3)  # accepted: nothing to report yet
    # The last subscriber gone, nothing polls any more.
    await eventually(lambda: "DE" not in bus(app).watchers)


async def test_every_register_kind_has_its_subscription_fields(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        answer = await graphql(client, "{ __schema { subscriptionType { fields { name } } } }")
    names = {f["name"] for f in answer["data"]["__schema"]["subscriptionType"]["fields"]}
    expected = {
        f"{register.datamodel.entities[e].graphql_name}_changed"
        for register in app.state.gateway.report.registers
        for e in event_entities(register)
    }
    assert names == expected
    assert {"DE_Wahlergebnis_changed", "CZPREZ_OKRSEK_changed"} <= names
    assert "DE_Stimme_changed" not in names


async def test_an_unknown_subscription_field_is_an_error(app: Starlette) -> None:
    async with graphql_ws(app) as ws:
        op = await ws.subscribe("subscription { DE_Nothing_changed { id } }")
        message = await ws.message(op)
        assert message["type"] == "error"
