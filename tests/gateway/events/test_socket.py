"""Subscriptions over a real WebSocket on loopback (uvicorn), with the `websockets` client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import InvalidStatus

from gateway.graphql.limits import LimitSettings
from gateway.http.app import create_app
from gateway.http.config import Settings
from gateway.http.server import RunningServer, serve_asgi
from tests.support import register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[RunningServer]:
    with register_subset("DE") as registers:
        settings = Settings(
            registers_dir=registers,
            rate_limit=None,
            limits=LimitSettings(max_aliases=1),
        )
        running = await serve_asgi(create_app(settings))
        try:
            yield running
        finally:
            await running.stop()


async def _open(server: RunningServer) -> websockets.ClientConnection:
    url = server.url.replace("http://", "ws://") + "/graphql"
    socket = await websockets.connect(
        url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await socket.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await socket.recv()) == {"type": "connection_ack"}
    return socket


async def test_handshake_and_a_subscription_over_a_real_socket(server: RunningServer) -> None:
    socket = await _open(server)
    try:
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { DE_Wahlparameter_changed { id } }"},
                }
            )
        )
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket.recv()) == {"type": "pong"}
        await socket.send(json.dumps({"id": "1", "type": "complete"}))
    finally:
        await socket.close()


async def test_subscriptions_obey_the_query_limits(server: RunningServer) -> None:
    socket = await _open(server)
    try:
        document = (
            "subscription { a: DE_Wahlparameter_changed { id } b: DE_Wahlparameter_changed { id } }"
        )
        await socket.send(
            json.dumps({"id": "2", "type": "subscribe", "payload": {"query": document}})
        )
        message = json.loads(await socket.recv())
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert message["payload"][0]["extensions"]["limit"] == "aliases"
    finally:
        await socket.close()


async def test_the_legacy_protocol_gets_no_session(server: RunningServer) -> None:
    url = server.url.replace("http://", "ws://") + "/graphql"
    try:
        socket = await websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-ws")])
    except InvalidStatus:
        return
    try:
        assert socket.subprotocol is None
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4406
    finally:
        await socket.close()
