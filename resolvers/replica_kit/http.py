"""Faults and the request log for a replica speaking HTTP: an ASGI layer over its app.

:class:`FaultyHttp` wraps a replica's ASGI app: it logs every request in a
:class:`~resolvers.replica_kit.log.RequestLog`, asks the replica's
:class:`~resolvers.replica_kit.faults.Faults` which fault answers it, and does on the wire what
the fault says (see :mod:`resolvers.replica_kit.faults`). What is protocol-specific (the body of
an error status, what a malformed body looks like, what a request is called in the log) the
replica passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers.replica_kit.faults import Fault, Faults
from resolvers.replica_kit.log import Request, RequestLog

__all__ = ["FaultyHttp", "StatusBody", "describe_http"]

StatusBody = Callable[[int], tuple[bytes, list[tuple[bytes, bytes]]]]
"""The body and headers a replica answers a ``status`` fault with."""

_HOLD_SECONDS: Final = 3600.0
_KEPT_HEADERS: Final = ("x-request-id", "if-none-match", "if-modified-since", "accept")


def _plain_status(status: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    return f"HTTP {status}\n".encode(), [(b"content-type", b"text/plain; charset=utf-8")]


def _garbled(body: bytes) -> bytes:
    return b"\x00<<garbled>>" + body[len(body) // 2 :]


def describe_http(scope: Scope) -> Request:
    """The log entry for an HTTP request: method, decoded path, parameters, kept headers."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    params: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        params.setdefault(name, value)
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name.decode("latin-1") in _KEPT_HEADERS
    }
    return Request(
        method=scope["method"],
        path=unquote_to_bytes(raw_path).decode("utf-8", errors="replace"),
        params=params,
        query=query.decode("latin-1"),
        raw_path=raw_path.decode("latin-1"),
        headers=headers,
    )


class FaultyHttp:
    """An ASGI app: ``app`` behind the request log and the faults.

    ``describe``: the log entry for a request (None: neither logged nor faulted, e.g. a
    control endpoint); ``applies``: whether faults may hit a logged request; ``status_body``:
    the answer to a ``status`` fault; ``malformed``: a body that does not parse, made from the
    real one; ``latency``: seconds added before every answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: Faults | None = None,
        log: RequestLog | None = None,
        describe: Callable[[Scope], Request | None] = describe_http,
        applies: Callable[[Request], bool] | None = None,
        status_body: StatusBody = _plain_status,
        malformed: Callable[[bytes], bytes] = _garbled,
    ) -> None:
        self.app = app
        self.faults = faults if faults is not None else Faults()
        self.log = log if log is not None else RequestLog()
        self.latency: float = 0.0
        self._describe = describe
        self._applies = applies
        self._status_body = status_body
        self._malformed = malformed
        self._stopping = asyncio.Event()

    def stopping(self) -> None:
        """The server stops: requests held by faults or latency end now."""
        self._stopping.set()

    def starting(self) -> None:
        """The server (re)starts: faults hold requests again."""
        self._stopping = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = self._describe(scope)
        if request is None:
            await self.app(scope, receive, send)
            return
        self.log.record(request)
        transport = _transport_of(send)
        if transport is not None:
            _no_delay(transport)
        if self.latency > 0:
            await self._sleep(self.latency)
        fault = None
        if self._applies is None or self._applies(request):
            fault = self.faults.take(request)
        request.fault = fault.kind if fault is not None else None
        await self._answer(scope, receive, send, request, fault, transport)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        fault: Fault | None,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "slow":
            await self._sleep(fault.delay)
        if kind == "timeout":
            await self._hold(receive, transport)
            return
        if kind == "drop" and transport is not None:
            await _close(receive, transport)
            return
        if fault is not None and kind == "status":
            body, headers = self._status_body(fault.status)
            await self._send(send, request, fault.status, headers, body)
            return
        status, headers, body = await _run(self.app, scope, receive)
        if fault is None or kind in ("slow", "drop") or status != 200 or not body:
            if kind == "drop":  # no transport to close: end the answer before its body
                await self._send(send, request, status, headers, body, cut=b"")
                return
            await self._send(send, request, status, headers, body, resized=False)
            return
        if kind == "cut":
            await self._send(send, request, status, headers, body, cut=fault.kept(body))
            if transport is not None:
                await _close(receive, transport)
            return
        body = fault.kept(body) if kind == "truncate" else self._malformed(body)
        await self._send(send, request, status, headers, body)

    async def _send(
        self,
        send: Send,
        request: Request,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        cut: bytes | None = None,
        resized: bool = True,
    ) -> None:
        """Send an answer; ``cut``: announce ``body``'s length but send only these bytes;
        ``resized``: announce the length of ``body`` (not the app's)."""
        kept = headers
        if resized:
            kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            kept.append((b"content-length", str(len(body)).encode()))
        request.status = status
        await send({"type": "http.response.start", "status": status, "headers": kept})
        sent = body if cut is None else cut
        request.size = len(sent)
        # A cut answer ends without its last body message: the server drops the connection.
        await send({"type": "http.response.body", "body": sent, "more_body": cut is not None})

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _hold(self, receive: Receive, transport: asyncio.BaseTransport | None) -> None:
        """Keep the request open until the client leaves or the replica stops."""
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({gone, stopping}, timeout=_HOLD_SECONDS, return_when="FIRST_COMPLETED")
        for task in (gone, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if transport is not None and not transport.is_closing():
            await _close(receive, transport)


async def _run(
    app: ASGIApp, scope: Scope, receive: Receive
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` for one request and collect its answer (status, headers, whole body)."""
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    return status, headers, b"".join(chunks)


def _transport_of(send: Send) -> asyncio.BaseTransport | None:
    """The connection's transport behind uvicorn's ``send``, to break connections on purpose.

    ASGI has no way to abort a response; uvicorn's send is a method of its request cycle,
    which holds the transport. Other servers give None, and faults fall back to ASGI means.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off for the connection.

    asyncio sets TCP_NODELAY only on sockets whose protocol number is IPPROTO_TCP, which a
    listener made by ``socket.socket(AF_INET, SOCK_STREAM)`` is not; uvicorn writes headers and
    body separately, so each response would otherwise wait ~40 ms for a delayed ACK.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _close(receive: Receive, transport: asyncio.BaseTransport) -> None:
    """Close the connection and wait until the server has noticed, so it adds nothing."""
    transport.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_wait_disconnect(receive), timeout=5)
