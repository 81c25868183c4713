"""A local replica of Folketingets åbne data (``https://oda.ft.dk/api/``), OData v3 JSON.

It serves the canonical replica data in ``data/ft/`` (see ``data/ft/ATTRIBUTION.md``) and behaves
like the real service: ``$metadata``; collections of at most 100 rows with an absolute
``odata.nextLink``; ``odata.count`` as a string; ``\\uXXXX``-escaped non-ASCII, property names
included; ``$filter``/``$orderby``/``$select``/``$top``/``$skip``/``$inlinecount``; ``400`` with
an empty body for malformed options; an IIS ``404`` page for unknown entity sets and for
``Sambehandlinger`` (listed in ``$metadata``, missing on the real service); ``501`` for writes.

For tests and benchmarks it logs every request and can add latency and faults on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast
from urllib.parse import quote, unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.server import RunningServer, serve_asgi
from gateway.sources.kinds import DemoHandle
from resolvers.odata.replica.data import (
    DEFAULT_DATA_DIR,
    MISSING_SETS,
    FtData,
    FtEntitySet,
    FtProperty,
    load_ft_data,
)
from resolvers.odata.replica.query import (
    QueryOptionError,
    QueryOptions,
    execute,
    next_link,
    parse_options,
    parse_query_string,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "FAULTS",
    "FtData",
    "FtEntitySet",
    "FtProperty",
    "FtReplica",
    "RequestRecord",
    "demo_replica",
    "load_ft_data",
]

_log = logging.getLogger(__name__)

# --- HTTP semantics ---------------------------------------------------------------------------

_JSON_TYPE: Final = b"application/json;odata=minimalmetadata; charset=utf-8"
_COMMON_HEADERS: Final = ((b"dataserviceversion", b"3.0"), (b"access-control-allow-origin", b"*"))
_WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE", "MERGE"})
_NOT_FOUND_PAGE: Final = (
    b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml">\r\n<head>\r\n'
    b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>\r\n'
    b"<title>404 - File or directory not found.</title>\r\n</head>\r\n<body>\r\n"
    b'<div id="header"><h1>Server Error</h1></div>\r\n<div id="content">\r\n'
    b' <div class="content-container"><fieldset>\r\n'
    b"  <h2>404 - File or directory not found.</h2>\r\n"
    b"  <h3>The resource you are looking for might have been removed, had its name changed,"
    b" or is temporarily unavailable.</h3>\r\n </fieldset></div>\r\n</div>\r\n"
    b"</body>\r\n</html>\r\n"
)
_UNAVAILABLE_PAGE: Final = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b"<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD>\r\n"
    b"<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is unavailable."
    b"</p>\r\n</BODY></HTML>\r\n"
)
_MALFORMED_BODY: Final = b"<html><body><h1>Runtime Error</h1></body></html>"


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _json_reply(status: int, body: Mapping[str, Any]) -> _Reply:
    # ensure_ascii: the real service escapes every non-ASCII character, names included.
    text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return _Reply(status, text.encode("ascii"), ((b"content-type", _JSON_TYPE), *_COMMON_HEADERS))


def _error_reply(status: int, message: str) -> _Reply:
    error = {"odata.error": {"code": "", "message": {"lang": "en-US", "value": message}}}
    return _json_reply(status, error)


def _not_found() -> _Reply:
    return _Reply(404, _NOT_FOUND_PAGE, ((b"content-type", b"text/html"),))


def _bad_request() -> _Reply:
    return _Reply(400, b"", _COMMON_HEADERS)


class _FtService:
    """What oda.ft.dk answers to one request, without any I/O."""

    def __init__(self, data: FtData, page_size: int) -> None:
        self._data = data
        self._page_size = page_size

    def respond(self, method: str, path: str, raw_query: bytes, root: str) -> _Reply:
        """The reply to ``method path?raw_query``; ``root`` is the absolute service root URL."""
        if path in ("/api", "/api/"):
            return self._for_method(method) or self._service_document(root)
        if not path.startswith("/api/"):
            return _not_found()
        resource = path[len("/api/") :].removesuffix("/")
        if resource == "$metadata":
            return self._for_method(method) or _Reply(
                200, self._data.metadata, ((b"content-type", b"application/xml; charset=utf-8"),)
            )
        name, key = _split_key(resource)
        entity_set = self._data.entity_sets.get(name)
        if entity_set is None or name in MISSING_SETS or key == "":
            return _not_found()
        refused = self._for_method(method)
        if refused is not None:
            return refused
        try:
            options = parse_options(parse_query_string(raw_query), entity_set.types)
        except QueryOptionError:
            return _bad_request()
        if key is None:
            return self._collection(entity_set, options, root)
        return self._entity(entity_set, key, options, root)

    @staticmethod
    def _for_method(method: str) -> _Reply | None:
        if method in ("GET", "HEAD"):
            return None
        if method in _WRITE_METHODS:
            return _error_reply(501, "This service is read-only.")
        return _Reply(405, b"", (*_COMMON_HEADERS, (b"allow", b"GET, HEAD")))

    def _service_document(self, root: str) -> _Reply:
        value = [{"name": name, "url": name} for name in self._data.entity_sets]
        return _json_reply(200, {"odata.metadata": f"{root}$metadata", "value": value})

    def _collection(self, entity_set: FtEntitySet, options: QueryOptions, root: str) -> _Reply:
        result = execute(self._data.rows[entity_set.name], options, self._page_size)
        body: dict[str, Any] = {"odata.metadata": f"{root}$metadata#{entity_set.name}"}
        if result.count is not None:
            body["odata.count"] = str(result.count)
        body["value"] = result.rows
        link = next_link(root + quote(entity_set.name), options, result)
        if link is not None:
            body["odata.nextLink"] = link
        return _json_reply(200, body)

    def _entity(
        self, entity_set: FtEntitySet, key: str, options: QueryOptions, root: str
    ) -> _Reply:
        if not key.isascii() or not key.isdigit() or len(key) > 10:
            return _bad_request()
        row = self._data.index[entity_set.name].get(int(key))
        if row is None:
            return _error_reply(404, f"No {entity_set.name} with id {key}.")
        body: dict[str, Any] = {"odata.metadata": f"{root}$metadata#{entity_set.name}/@Element"}
        body.update((name, row[name]) for name in options.select)
        return _json_reply(200, body)


def _split_key(resource: str) -> tuple[str, str | None]:
    """``Aktør(13)`` → ``("Aktør", "13")``; ``Aktør`` → ``("Aktør", None)``.

    Anything after the key (navigation paths) gives the key ``""``, answered with 404.
    """
    name, paren, rest = resource.partition("(")
    if not paren:
        return name, None
    key, close, tail = rest.partition(")")
    if not close or tail or not key:
        return name, ""
    return name, key


# --- the replica ------------------------------------------------------------------------------

Fault: TypeAlias = Literal["error500", "error503", "timeout", "truncate", "malformed", "drop"]
FAULTS: Final[frozenset[str]] = frozenset(
    {"error500", "error503", "timeout", "truncate", "malformed", "drop"}
)
_HOLD_SECONDS: Final = 3600.0


@dataclass(slots=True)
class RequestRecord:
    """One request the replica received."""

    method: str
    raw_path: str
    """The path as sent, percent-encoding kept."""
    path: str
    """The percent-decoded path."""
    query: dict[str, str]
    """Decoded query parameters (the first of repeated names)."""
    query_string: str
    """The raw query string."""
    time: float
    """When it arrived (``time.time()``)."""
    status: int | None = None
    """Status sent, or None while pending or when the connection was dropped."""
    fault: str | None = None
    """The injected fault that answered it, if any."""
    request_id: str = ""
    """The ``X-Request-ID`` header the client sent (empty if none)."""


@dataclass(slots=True)
class _Injection:
    fault: Fault
    remaining: int | None
    path_contains: str | None


# The register the recorded data in data/ft was recorded from.
RECORDED_REGISTERS: tuple[str, ...] = ("FT",)


class FtReplica:
    """The FT OData replica: an ASGI app plus a loopback server and test switches.

    Example::

        async with FtReplica() as replica:
            replica.inject("error503", times=2)
            ...  # GET replica.url + "Stemme"
    """

    def __init__(self, data: FtData | None = None, *, page_size: int = 100) -> None:
        self._service = _FtService(data if data is not None else load_ft_data(), page_size)
        self.registers: tuple[str, ...] = RECORDED_REGISTERS
        """The registers served (``overrides`` names them)."""
        self.requests: list[RequestRecord] = []
        self.latency: float = 0.0
        """Seconds added before every response."""
        self._faults: list[_Injection] = []
        self._server: RunningServer | None = None
        self._stopping = asyncio.Event()
        self.app: ASGIApp = _AsgiApp(self._asgi)
        """The ASGI application (serve it elsewhere, or use :meth:`start`)."""

    # control

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FtReplica:
        """Serve on ``host:port`` (0 = any free port) until :meth:`stop`."""
        if self._server is not None:
            raise RuntimeError("the replica is already running")
        self._stopping = asyncio.Event()
        self._server = await serve_asgi(self.app, host, port)
        return self

    async def stop(self) -> None:
        """Stop serving; requests held by faults or latency end at once."""
        server, self._server = self._server, None
        if server is not None:
            self._stopping.set()
            await server.stop()

    async def __aenter__(self) -> FtReplica:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The service root, ``http://127.0.0.1:<port>/api/``."""
        if self._server is None:
            raise RuntimeError("the replica is not running")
        return f"http://{self._server.host}:{self._server.port}/api/"

    @property
    def address(self) -> str:
        """The service root, for the demo's listing."""
        return self.url

    @property
    def overrides(self) -> Mapping[str, Mapping[str, Any]]:
        """``Source.json`` options pointing the served registers at this replica."""
        return {name: {"url": self.url} for name in self.registers}

    def inject(
        self, fault: str, *, times: int | None = 1, path_contains: str | None = None
    ) -> None:
        """Answer the next ``times`` matching requests (None: all) with ``fault``.

        Faults: ``error500``, ``error503``, ``timeout`` (held open until the client gives up
        or the replica stops), ``truncate`` (half the declared body, then the connection
        closes), ``malformed`` (200 with a body that is not JSON), ``drop`` (connection closed
        without a response). ``path_contains`` limits it to paths (decoded or raw) holding it.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        self._faults.append(_Injection(cast(Fault, fault), times, path_contains))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._faults.clear()

    def data_requests(self) -> int:
        """How many requests were received, ``$metadata`` ones excepted."""
        return sum(1 for record in self.requests if not record.path.endswith("/$metadata"))

    def reset_log(self) -> None:
        """Forget the requests received so far."""
        self.requests.clear()

    def _take_fault(self, record: RequestRecord) -> Fault | None:
        for injection in self._faults:
            wanted = injection.path_contains
            if wanted is None or wanted in record.path or wanted in record.raw_path:
                if injection.remaining is not None:
                    injection.remaining -= 1
                    if injection.remaining == 0:
                        self._faults.remove(injection)
                return injection.fault
        return None

    # ASGI

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        record = _record(scope)
        self.requests.append(record)
        transport = _transport_of(send)
        if transport is not None:
            _no_delay(transport)
        send = _recording(send, record)
        try:
            await self._handle(scope, receive, send, record, transport)
        except Exception:
            _log.exception("FT replica failed on %s %s", record.method, record.raw_path)
            if record.status is None:
                await _send_reply(send, _Reply(500), head=False)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: RequestRecord,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        if self.latency > 0:
            await self._sleep(self.latency)
        record.fault = fault = self._take_fault(record)
        if fault == "timeout":
            await self._hold(receive, transport)
            return
        if fault == "drop" and transport is not None:
            await _close(receive, transport)
            return
        reply = self._reply(scope, record, fault)
        if fault in ("truncate", "drop"):
            await _send_truncated(send, receive, transport, reply)
            return
        await _send_reply(send, reply, head=record.method == "HEAD")

    def _reply(self, scope: Scope, record: RequestRecord, fault: Fault | None) -> _Reply:
        if fault == "error500":
            return _error_reply(500, "An error has occurred.")
        if fault == "error503":
            return _Reply(503, _UNAVAILABLE_PAGE, ((b"content-type", b"text/html"),))
        if fault == "malformed":
            return _Reply(200, _MALFORMED_BODY, ((b"content-type", _JSON_TYPE), *_COMMON_HEADERS))
        try:
            path = _decode_path(scope)
        except UnicodeDecodeError:
            return _bad_request()
        raw_query: bytes = scope.get("query_string", b"")
        return self._service.respond(record.method, path, raw_query, _root(scope))

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


class _AsgiApp:
    """An ASGI 3 callable (servers tell ASGI 2 from 3 by an async ``__call__``)."""

    def __init__(self, handler: ASGIApp) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler(scope, receive, send)


def _record(scope: Scope) -> RequestRecord:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query_string: bytes = scope.get("query_string", b"")
    query: dict[str, str] = {}
    with contextlib.suppress(QueryOptionError):
        for name, value in parse_query_string(query_string):
            query.setdefault(name, value)
    return RequestRecord(
        method=scope["method"],
        raw_path=raw_path.decode("latin-1"),
        path=unquote_to_bytes(raw_path).decode("utf-8", errors="replace"),
        query=query,
        query_string=query_string.decode("latin-1"),
        time=time.time(),
        request_id=dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1"),
    )


def _decode_path(scope: Scope) -> str:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    return unquote_to_bytes(raw_path).decode("utf-8")


def _root(scope: Scope) -> str:
    """The service root as the client addressed it (scheme, Host header, ``/api/``)."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}/api/"


def _recording(send: Send, record: RequestRecord) -> Send:
    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        await send(message)

    return recording_send


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


async def _send_reply(send: Send, reply: _Reply, *, head: bool) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


async def _send_truncated(
    send: Send, receive: Receive, transport: asyncio.BaseTransport | None, reply: _Reply
) -> None:
    """Declare the whole body, send half of it, and end the connection."""
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    half = reply.body[: len(reply.body) // 2]
    await send({"type": "http.response.body", "body": half, "more_body": True})
    if transport is not None:
        await _close(receive, transport)
    # Without a transport, returning early makes the server close the connection.


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def demo_replica(registers: Mapping[str, Mapping[str, Any]] | None = None) -> DemoHandle:
    """Start the replica on loopback with the recorded data, for ``gateway demo``.

    ``registers`` (name → ``Source.json``) are the registers it serves; by default the one
    the recording is of.
    """
    replica = FtReplica()
    if registers:
        replica.registers = tuple(registers)
    return await replica.start()
