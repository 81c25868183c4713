"""Limits without holes, over real sockets: WebSocket operations are rate-limited, failed
authentications are slowed, forwarding headers count only from trusted proxies, oversized
headers are refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.cli import server_options
from gateway.http.app import create_app
from gateway.http.auth import AuthSettings
from gateway.http.config import Settings
from gateway.http.ratelimit import RateLimitSettings
from tests.support import register_subset

QUERY = {"query": "{ __typename }"}
TRANSPORT_WS = websockets.Subprotocol("graphql-transport-ws")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[str, Any]]:
    """The gateway (FT, upstream unreachable) on a loopback socket, run as ``gateway serve``
    runs uvicorn (:func:`gateway.cli.server_options`)."""
    options.setdefault("auth", AuthSettings.demo())
    options.setdefault("rate_limit", None)
    with register_subset("FT") as folder:
        settings = Settings(
            registers_dir=folder,
            sources={"FT": {"url": "http://127.0.0.1:9/api/", "rate": 0, "timeout": 2}},
            **options,
        )
        app = create_app(settings)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", access_log=False, **server_options(settings)
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        try:
            yield f"127.0.0.1:{sock.getsockname()[1]}", app
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sock.close()


# -- WebSocket operations count like requests --------------------------------------------


async def test_websocket_flood_is_rate_limited_then_closed_4429() -> None:
    limits = RateLimitSettings(per_key=5, per_ip=5, websocket_flood=3)
    async with served(rate_limit=limits) as (address, _):
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=[TRANSPORT_WS]) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for ident in range(5):
                await ws.send(json.dumps({"id": str(ident), "type": "subscribe", "payload": QUERY}))
                assert json.loads(await ws.recv()) == {
                    "id": str(ident),
                    "type": "next",
                    "payload": {"data": {"__typename": "Query"}},
                }
                assert json.loads(await ws.recv())["type"] == "complete"
            errors = []
            code = None
            try:
                for ident in range(5, 400):
                    await ws.send(
                        json.dumps({"id": str(ident), "type": "subscribe", "payload": QUERY})
                    )
                    errors.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
            assert code == 4429
        assert len(errors) == 3
        assert [e["id"] for e in errors] == ["5", "6", "7"]
        for error in errors:
            assert error["type"] == "error"
            extensions = error["payload"][0]["extensions"]
            assert extensions["code"] == "RATE_LIMITED"
            assert 1 <= extensions["retryAfter"] <= 61
        # The same identity's budget is shared with HTTP.
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            response = await client.post("/graphql", json=QUERY)
            assert response.status_code == 429


# -- failed authentication is slowed -----------------------------------------------------


async def test_wrong_keys_are_slowed_per_address() -> None:
    auth = AuthSettings.demo()
    async with served(auth=auth) as (address, app):
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            wrong = {"X-API-Key": "not-a-key-of-this-gateway"}
            statuses = [
                (await client.post("/graphql", json=QUERY, headers=wrong)).status_code
                for _ in range(auth.max_failures + 5)
            ]
            assert statuses[: auth.max_failures] == [401] * auth.max_failures
            assert statuses[auth.max_failures :] == [429] * 5
            refused = await client.post("/graphql", json=QUERY, headers=wrong)
            assert 1 <= int(refused.headers["retry-after"]) <= int(auth.failure_window) + 1
            assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            # A good key from the same address waits too; no credentials at all do not.
            good = {"X-API-Key": "demo-level-1"}
            assert (await client.post("/graphql", json=QUERY, headers=good)).status_code == 429
            assert (await client.post("/graphql", json=QUERY)).status_code == 200
        # Other addresses are not affected.
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as other:
            assert (await other.post("/graphql", json=QUERY, headers=good)).status_code == 200
            assert (await other.post("/graphql", json=QUERY, headers=wrong)).status_code == 401


# -- forwarding headers ------------------------------------------------------------------


async def test_forwarded_for_is_ignored_by_default() -> None:
    async with (
        served(rate_limit=RateLimitSettings(per_ip=3)) as (address, _),
        httpx.AsyncClient(base_url=f"http://{address}") as client,
    ):
        statuses = []
        for n in range(6):
            headers = {"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=198.51.100.{n}"}
            response = await client.post("/graphql", json=QUERY, headers=headers)
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_forwarded_for_is_honoured_from_a_trusted_proxy() -> None:
    limits = RateLimitSettings(per_ip=2)
    async with (
        served(rate_limit=limits, trusted_proxies=("127.0.0.0/8",)) as (address, _),
        httpx.AsyncClient(base_url=f"http://{address}") as client,
    ):

        async def status(**headers: str) -> int:
            return (await client.post("/graphql", json=QUERY, headers=headers)).status_code

        first = {"X-Forwarded-For": "203.0.113.1"}
        assert [await status(**first) for _ in range(3)] == [200, 200, 429]
        # A client cannot escape by prepending addresses: the nearest untrusted hop counts.
        assert await status(**{"X-Forwarded-For": "10.9.9.9, 203.0.113.1"}) == 429
        assert await status(**{"X-Forwarded-For": "203.0.113.2"}) == 200
        assert await status(Forwarded='for="203.0.113.3:4711";proto=https') == 200
        assert await status(Forwarded="for=203.0.113.3") == 200
        assert await status(Forwarded="for=203.0.113.3") == 429


# -- request headers ---------------------------------------------------------------------


async def test_oversized_or_too_many_headers_get_431() -> None:
    async with served() as (address, _):
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            huge = await client.post("/graphql", json=QUERY, headers={"X-Pad": "a" * 20_000_000})
            assert huge.status_code == 431
            assert "errors" in huge.json()
            many = {f"X-Pad-{n}": "b" for n in range(101)}
            crowded = await client.post("/graphql", json=QUERY, headers=many)
            assert crowded.status_code == 431
            assert crowded.json()["errors"][0]["extensions"]["code"] == "HEADERS_TOO_LARGE"
            wide = {f"X-Wide-{n}": "c" * 4000 for n in range(5)}
            assert (await client.post("/graphql", json=QUERY, headers=wide)).status_code == 431
            assert (await client.post("/graphql", json=QUERY)).status_code == 200
        url = f"ws://{address}/graphql"
        for headers in (many, wide):
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(
                    url, subprotocols=[TRANSPORT_WS], additional_headers=headers
                )
            assert refused.value.response.status_code == 431
        async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_servers_started_in_process_ignore_forwarding_headers() -> None:
    """The demo's servers (``gateway.http.server.serve_asgi``) leave the client address
    alone."""
    from gateway.http.server import serve_asgi

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(scope.get("client"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = await serve_asgi(app)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{server.port}/", headers={"X-Forwarded-For": "203.0.113.7"}
            )
        assert response.status_code == 204
    finally:
        await server.stop()
    (client_address,) = seen
    assert client_address[0] == "127.0.0.1"
