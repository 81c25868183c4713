"""A minimal graphql-transport-ws client that talks ASGI WebSocket messages to the app.

uvicorn serves WebSockets only with the ``websockets`` or ``wsproto`` package, and neither is
installed, so the client speaks the ASGI WebSocket protocol to the application directly, as a
server would after the handshake: ``websocket.connect``/``receive``/``disconnect`` in,
``websocket.accept``/``send``/``close`` out. Everything from the middleware down is the real app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.types import ASGIApp, Message

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class ClosedError(Exception):
    """The server closed the WebSocket."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class AsgiWebSocket:
    """One WebSocket connection to an ASGI app."""

    def __init__(
        self,
        app: ASGIApp,
        path: str = "/graphql",
        headers: Mapping[str, str] | None = None,
        subprotocols: tuple[str, ...] = (TRANSPORT_WS,),
        query_string: str = "",
    ) -> None:
        self.app = app
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "http_version": "1.1",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query_string.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"gateway.test"),
                *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "subprotocols": list(subprotocols),
            "state": {},
        }
        self._in: asyncio.Queue[Message] = asyncio.Queue()
        self._out: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.subprotocol: str | None = None
        self.closed: ClosedError | None = None

    async def connect(self) -> None:
        """Open the connection; raises ClosedError if the app refuses it."""
        self._task = asyncio.create_task(self._serve())
        await self._in.put({"type": "websocket.connect"})
        message = await self._next()
        if message["type"] != "websocket.accept":
            raise AssertionError(f"unexpected {message}")
        self.subprotocol = message.get("subprotocol")

    async def _serve(self) -> None:
        try:
            await self.app(self.scope, self._in.get, self._out.put)
        finally:
            await self._out.put({"type": "app.done"})

    async def _next(self, seconds: float = 10.0) -> Message:
        if self.closed is not None:
            raise self.closed
        message = await asyncio.wait_for(self._out.get(), seconds)
        if message["type"] == "websocket.close":
            self.closed = ClosedError(message.get("code", 1000), message.get("reason") or "")
            raise self.closed
        if message["type"] == "app.done":
            self.closed = ClosedError(1006, "the app ended")
            raise self.closed
        return message

    async def send_json(self, document: Mapping[str, Any]) -> None:
        """Send one text message."""
        await self._in.put({"type": "websocket.receive", "text": json.dumps(document)})

    async def receive_json(self, seconds: float = 10.0) -> dict[str, Any]:
        """The next text message, decoded."""
        message = await self._next(seconds)
        if message["type"] != "websocket.send":
            raise AssertionError(f"unexpected {message}")
        document: dict[str, Any] = json.loads(message["text"])
        return document

    async def aclose(self) -> None:
        """Disconnect and wait for the app to finish with the connection."""
        if self._task is None:
            return
        await self._in.put({"type": "websocket.disconnect", "code": 1000})
        try:
            await asyncio.wait_for(self._task, 10)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class GraphQLWebSocket:
    """graphql-transport-ws on an :class:`AsgiWebSocket`: init, subscribe, next, complete."""

    def __init__(self, socket: AsgiWebSocket) -> None:
        self.socket = socket
        self._ids = 0
        self.pending: dict[str, list[dict[str, Any]]] = {}

    async def init(self, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``connection_init``; the server's ``connection_ack``."""
        await self.socket.send_json({"type": "connection_init", "payload": dict(payload or {})})
        ack = await self.socket.receive_json()
        assert ack["type"] == "connection_ack", ack
        return ack

    async def subscribe(self, query: str, variables: Mapping[str, Any] | None = None) -> str:
        """Start an operation; its id."""
        self._ids += 1
        ident = str(self._ids)
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        self.pending[ident] = []
        await self.socket.send_json({"id": ident, "type": "subscribe", "payload": payload})
        return ident

    async def message(self, ident: str, seconds: float = 10.0) -> dict[str, Any]:
        """The next message (next, error or complete) of operation ``ident``."""
        queue = self.pending.setdefault(ident, [])
        while not queue:
            message = await self.socket.receive_json(seconds)
            if message.get("type") == "ping":
                await self.socket.send_json({"type": "pong"})
                continue
            self.pending.setdefault(str(message.get("id")), []).append(message)
        return queue.pop(0)

    async def complete(self, ident: str) -> None:
        """Stop an operation."""
        await self.socket.send_json({"id": ident, "type": "complete"})


@asynccontextmanager
async def graphql_ws(
    app: ASGIApp,
    path: str = "/graphql",
    headers: Mapping[str, str] | None = None,
    query_string: str = "",
) -> AsyncIterator[GraphQLWebSocket]:
    """A connected, acknowledged graphql-transport-ws client."""
    socket = AsgiWebSocket(app, path, headers, query_string=query_string)
    await socket.connect()
    try:
        client = GraphQLWebSocket(socket)
        await client.init()
        yield client
    finally:
        await socket.aclose()
