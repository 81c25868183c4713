"""A local replica of Folketingets åbne data (``https://oda.ft.dk/api/``), OData v3 JSON.

It serves the canonical replica data in ``data/ft/`` (see ``data/ft/ATTRIBUTION.md``) and behaves
like the real service: ``$metadata``; collections of at most 100 rows with an absolute
``odata.nextLink``; ``odata.count`` as a string; ``\\uXXXX``-escaped non-ASCII, property names
included; ``$filter``/``$orderby``/``$select``/``$top``/``$skip``/``$inlinecount``; ``400`` with
an empty body for malformed options; an IIS ``404`` page for unknown entity sets and for
``Sambehandlinger`` (listed in ``$metadata``, missing on the real service); ``501`` for writes.

For tests and benchmarks it logs every request and can add latency and faults on demand (the
replica kit's :class:`~resolvers.replica_kit.faults.Fault` vocabulary).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

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
from resolvers.odata.replica.expr import Row
from resolvers.odata.replica.query import (
    QueryOptionError,
    QueryOptions,
    execute,
    forget_matches,
    next_link,
    parse_options,
    parse_query_string,
)
from resolvers.replica_kit.faults import Fault, Faults
from resolvers.replica_kit.http import FaultyHttp, describe_http
from resolvers.replica_kit.log import Request, RequestLog

__all__ = [
    "DEFAULT_DATA_DIR",
    "Fault",
    "FtData",
    "FtEntitySet",
    "FtProperty",
    "ODataReplica",
    "demo_replica",
    "load_ft_data",
]

_log = logging.getLogger(__name__)
_COPENHAGEN: Final = zoneinfo.ZoneInfo("Europe/Copenhagen")

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
        # The rows served, per entity set: the recorded ones until a set is changed (then
        # that set's own copy).
        self.rows: dict[str, tuple[Row, ...]] = dict(data.rows)
        self.index: dict[str, Mapping[int, Row]] = dict(data.index)

    @property
    def entity_sets(self) -> Mapping[str, FtEntitySet]:
        return self._data.entity_sets

    def change(self, name: str, changed: Mapping[int, Row | None]) -> None:
        """Replace (a row), add (a new id) or delete (None) rows of entity set ``name``."""
        index = dict(self.index[name])
        for key, row in changed.items():
            if row is None:
                index.pop(key, None)
            else:
                index[key] = row
        self.index[name] = index
        self.rows[name] = tuple(index[k] for k in sorted(index))
        forget_matches()

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
        result = execute(self.rows[entity_set.name], options, self._page_size)
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
        row = self.index[entity_set.name].get(int(key))
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


def _status_body(status: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """What IIS and the service answer with an error status."""
    if status == 503:
        return _UNAVAILABLE_PAGE, [(b"content-type", b"text/html")]
    reply = _error_reply(status, "An error has occurred.")
    return reply.body, list(reply.headers)


def _describe(scope: Scope) -> Request:
    request = describe_http(scope)
    params: dict[str, str] = {}
    with contextlib.suppress(QueryOptionError):
        for name, value in parse_query_string(scope.get("query_string", b"")):
            params.setdefault(name, value)
    request.params = params
    return request


# The register the recorded data in data/ft was recorded from.
RECORDED_REGISTERS: tuple[str, ...] = ("FT",)


class ODataReplica:
    """The FT OData replica: an ASGI app plus a loopback server and test switches.

    Faults (:attr:`faults`, the kit's vocabulary): ``status`` answers IIS's 503 page, or the
    service's OData error for other statuses; ``malformed`` is a 200 with an HTML error page;
    ``cut`` announces the whole body and closes the connection part-way. Every request is
    logged in :attr:`log`.

    Example::

        async with ODataReplica() as replica:
            replica.faults.inject(Fault("status", status=503, times=2))
            ...  # GET replica.url + "Stemme"
    """

    def __init__(self, data: FtData | None = None, *, page_size: int = 100) -> None:
        self._service = _FtService(data if data is not None else load_ft_data(), page_size)
        self.registers: tuple[str, ...] = RECORDED_REGISTERS
        """The registers served (``overrides`` names them)."""
        self.faults = Faults()
        """The faults to inject."""
        self.log = RequestLog()
        """Every request received."""
        self._server: RunningServer | None = None
        self._layer = FaultyHttp(
            _AsgiApp(self._asgi),
            faults=self.faults,
            log=self.log,
            describe=_describe,
            status_body=_status_body,
            malformed=lambda _body: _MALFORMED_BODY,
        )
        self.app: ASGIApp = _AsgiApp(self._layer)
        """The ASGI application (serve it elsewhere, or use :meth:`start`)."""

    @property
    def latency(self) -> float:
        """Seconds added before every response."""
        return self._layer.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._layer.latency = seconds

    # control

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> ODataReplica:
        """Serve on ``host:port`` (0 = any free port) until :meth:`stop`."""
        if self._server is not None:
            raise RuntimeError("the replica is already running")
        self._layer.starting()
        self._server = await serve_asgi(self.app, host, port)
        return self

    async def stop(self) -> None:
        """Stop serving; requests held by faults or latency end at once."""
        server, self._server = self._server, None
        if server is not None:
            self._layer.stopping()
            await server.stop()

    async def __aenter__(self) -> ODataReplica:
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

    # changing the data, as the real service's data changes

    def update(self, entity_set: str, key: int, **values: Any) -> Row:
        """Change a row: ``values`` by property name; ``opdateringsdato`` moves to now
        (Copenhagen's wall clock, as the service writes it) unless given. The new row."""
        row = self._row(entity_set, key)
        self._check(entity_set, values)
        changed = {**row, **values}
        if "opdateringsdato" in row and "opdateringsdato" not in values:
            changed["opdateringsdato"] = _wall_clock_now()
        self._service.change(entity_set, {key: changed})
        return changed

    def insert(self, entity_set: str, **values: Any) -> Row:
        """Add a row (``id`` next after the largest unless given); unset properties are null.
        The new row."""
        self._check(entity_set, values)
        index = self._service.index[self._set(entity_set).name]
        key = int(values.get("id", max(index, default=0) + 1))
        if key in index:
            raise ValueError(f"{entity_set}: a row with id {key} exists")
        row: dict[str, Any] = dict.fromkeys(self._set(entity_set).types)
        row.update(values, id=key)
        if "opdateringsdato" in row and "opdateringsdato" not in values:
            row["opdateringsdato"] = _wall_clock_now()
        self._service.change(entity_set, {key: row})
        return row

    def delete(self, entity_set: str, key: int) -> Row:
        """Remove a row (the service no longer has it); the row removed."""
        row = self._row(entity_set, key)
        self._service.change(entity_set, {key: None})
        return row

    def _set(self, name: str) -> FtEntitySet:
        found = self._service.entity_sets.get(name)
        if found is None:
            raise KeyError(f"no entity set {name!r}")
        return found

    def _row(self, entity_set: str, key: int) -> Row:
        row = self._service.index[self._set(entity_set).name].get(key)
        if row is None:
            raise KeyError(f"{entity_set}: no row with id {key}")
        return row

    def _check(self, entity_set: str, values: Mapping[str, Any]) -> None:
        unknown = set(values) - set(self._set(entity_set).types)
        if unknown:
            raise KeyError(f"{entity_set} has no properties {sorted(unknown)}")

    def data_requests(self) -> int:
        """How many requests were received, ``$metadata`` ones excepted."""
        return len(self.log.where(test=lambda r: not r.path.endswith("/$metadata")))

    # ASGI

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        try:
            reply = self._reply(scope, method)
        except Exception:
            _log.exception("FT replica failed on %s %s", method, scope.get("path"))
            reply = _Reply(500)
        await _send_reply(send, reply, head=method == "HEAD")

    def _reply(self, scope: Scope, method: str) -> _Reply:
        try:
            path = _decode_path(scope)
        except UnicodeDecodeError:
            return _bad_request()
        raw_query: bytes = scope.get("query_string", b"")
        return self._service.respond(method, path, raw_query, _root(scope))


class _AsgiApp:
    """An ASGI 3 callable (servers tell ASGI 2 from 3 by an async ``__call__``)."""

    def __init__(self, handler: ASGIApp) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler(scope, receive, send)


def _wall_clock_now() -> str:
    """Now on Copenhagen's clock, written as the service writes its update times."""
    now = dt.datetime.now(_COPENHAGEN).replace(tzinfo=None)
    return now.isoformat(timespec="milliseconds")


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


async def _send_reply(send: Send, reply: _Reply, *, head: bool) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


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
    replica = ODataReplica()
    if registers:
        replica.registers = tuple(registers)
    return await replica.start()
