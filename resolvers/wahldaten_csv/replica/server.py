"""A web folder of Offene Wahldaten files, as a municipality publishes them.

Serves the recorded files of ``data/de/`` (all election folders flattened into one web folder)
under their real names, percent-encoded in URLs::

    GET /wahldaten/                 listing: JSON if the client accepts it, else an HTML index
    GET /wahldaten/index.json       listing as JSON
    GET /wahldaten/<name>           a file (text/csv), with ETag and Last-Modified

Listing and files answer conditional requests (``If-None-Match``, ``If-Modified-Since``) with
``304``. Tests and the demo can publish a newer file version at runtime, and inject faults on a
file or on the listing: an HTTP error status, a slow answer, a file cut short (as while it is
still being written), a connection dropped mid-body, or a malformed CSV. Every request is logged.
The same controls are reachable over HTTP under ``/_control/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime, parsedate_to_datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.http.server import RunningServer, serve_asgi

__all__ = [
    "DATA_DIR",
    "FAULT_KINDS",
    "Fault",
    "LoggedRequest",
    "StoredFile",
    "WahldatenDemo",
    "WahldatenReplica",
    "demo_replica",
    "recorded_files",
    "start_replica",
]

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "de"
BASE = "/wahldaten/"
LISTING = "/"  # the target name of the listing in faults and the request log
FAULT_KINDS = ("status", "slow", "truncate", "cut", "malformed")
# Recorded files whose name carries no timestamp are dated here.
_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the replica serves."""

    name: str
    body: bytes
    modified: dt.datetime
    etag: str


@dataclass(slots=True)
class Fault:
    """A fault to inject. ``target``: a file name, :data:`LISTING`, or None for every request.

    ``kind``: ``status`` (answer ``status``), ``slow`` (wait ``delay`` seconds first),
    ``truncate`` (serve the first half of a file, consistently), ``cut`` (declare the whole
    length, send half, close), ``malformed`` (a broken quote and a short row after the header).
    ``times``: how many requests it hits (None: until cleared).
    """

    kind: str
    target: str | None = None
    status: int = 503
    delay: float = 0.0
    times: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request the replica answered."""

    method: str
    target: str  # a file name, or LISTING
    status: int
    conditional: bool


def recorded_files(root: Path = DATA_DIR) -> dict[str, bytes]:
    """The recorded CSV files below ``root`` by file name (election folders flattened)."""
    return {path.name: path.read_bytes() for path in sorted(root.rglob("*.csv"))}


# The producer's timestamp at the end of a file name: 20200930T111111 or 15.09.2025 090313 809.
_STAMPS = (
    (re.compile(r"_(\d{8}T\d{6})(?:_\d+)?\.csv$"), "%Y%m%dT%H%M%S"),
    (re.compile(r"_(\d{2}\.\d{2}\.\d{4} \d{6})(?: \d{1,3})?(?:_\d+)?\.csv$"), "%d.%m.%Y %H%M%S"),
)


def _stamp_of(name: str) -> dt.datetime:
    """When the producer wrote a file, by its name (files without a timestamp: 2020-01-01)."""
    for pattern, form in _STAMPS:
        match = pattern.search(name)
        if match:
            return dt.datetime.strptime(match.group(1), form).replace(tzinfo=dt.UTC)
    return _EPOCH


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass
class WahldatenReplica:
    """The folder's state: files, faults and the request log, and the ASGI app serving them."""

    files: dict[str, StoredFile] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    changed: dt.datetime = _EPOCH
    json_listing: bool = True  # False: only the HTML index, as a plain web server has

    @classmethod
    def recorded(cls, root: Path = DATA_DIR) -> WahldatenReplica:
        """A replica of the recorded files, each dated by the timestamp in its name."""
        replica = cls()
        for name, body in recorded_files(root).items():
            replica.add_file(name, body, _stamp_of(name))
        return replica

    def add_file(self, name: str, body: bytes, modified: dt.datetime | None = None) -> StoredFile:
        """Publish a file (e.g. a newer version of a dataset) at runtime."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} is no plain file name")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        stored = StoredFile(name, body, modified or now, _etag(body))
        self.files[name] = stored
        self.changed = max(now, self.changed + dt.timedelta(seconds=1))
        return stored

    def remove_file(self, name: str) -> None:
        """Withdraw a file."""
        del self.files[name]
        self.changed = max(dt.datetime.now(dt.UTC).replace(microsecond=0), self.changed)

    def inject(self, fault: Fault) -> None:
        """Add a fault; the first matching fault applies to a request."""
        self.faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.faults.clear()

    def requests_for(self, target: str) -> list[LoggedRequest]:
        """The logged requests for a file name or :data:`LISTING`."""
        return [entry for entry in self.log if entry.target == target]

    def _fault_for(self, target: str) -> Fault | None:
        for fault in self.faults:
            if fault.target is None or fault.target == target:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    @property
    def listing_etag(self) -> str:
        """Changes whenever a file is added, replaced or removed."""
        state = "\n".join(f"{f.name}\t{f.etag}" for f in sorted(self.files.values(), key=_by_name))
        return _etag(state.encode("utf-8"))

    def listing_json(self) -> dict[str, Any]:
        """The listing as a JSON document."""
        return {
            "files": [
                {
                    "name": f.name,
                    "href": quote(f.name, safe=""),
                    "size": len(f.body),
                    "modified": f.modified.isoformat().replace("+00:00", "Z"),
                    "etag": f.etag,
                }
                for f in sorted(self.files.values(), key=_by_name)
            ]
        }

    def listing_html(self) -> str:
        """The listing as the HTML index a web server generates."""
        rows = [
            f'<a href="{quote(f.name, safe="")}">{html.escape(f.name)}</a>  '
            f"{f.modified:%d-%b-%Y %H:%M}  {len(f.body)}"
            for f in sorted(self.files.values(), key=_by_name)
        ]
        return (
            f"<html><head><title>Index of {BASE}</title></head><body>"
            f'<h1>Index of {BASE}</h1><hr><pre><a href="../">../</a>\n'
            + "\n".join(rows)
            + "\n</pre><hr></body></html>\n"
        )

    @cached_property
    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[
                Route(BASE, self._listing, methods=["GET", "HEAD"]),
                Route(BASE + "index.json", self._listing, methods=["GET", "HEAD"]),
                Route(BASE + "{name:path}", self._file, methods=["GET", "HEAD"]),
                Route("/_control/faults", self._control_faults, methods=["POST", "DELETE"]),
                Route("/_control/files/{name:path}", self._control_file, methods=["PUT", "DELETE"]),
                Route("/_control/log", self._control_log, methods=["GET"]),
            ]
        )

    # -- serving ----------------------------------------------------------------------------

    async def _listing(self, request: Request) -> Response:
        fault = self._fault_for(LISTING)
        response = await self._faulty(fault) if fault else None
        if response is None:
            headers = {
                "ETag": self.listing_etag,
                "Last-Modified": format_datetime(self.changed, usegmt=True),
                "Cache-Control": "no-cache",
            }
            if _not_modified(request, headers["ETag"], self.changed):
                response = Response(status_code=304, headers=headers)
            elif self.json_listing and (request.url.path.endswith(".json") or _wants_json(request)):
                response = JSONResponse(self.listing_json(), headers=headers)
            else:
                response = HTMLResponse(self.listing_html(), headers=headers)
        self._record(request, LISTING, response.status_code)
        return response

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        stored = self.files.get(name)
        fault = self._fault_for(name) if stored is not None else None
        response = await self._faulty(fault) if fault else None
        if response is None:
            response = self._file_response(request, stored, fault)
        self._record(request, name, response.status_code)
        return response

    def _file_response(
        self, request: Request, stored: StoredFile | None, fault: Fault | None
    ) -> Response:
        if stored is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        headers = {
            "ETag": stored.etag,
            "Last-Modified": format_datetime(stored.modified, usegmt=True),
        }
        if _not_modified(request, stored.etag, stored.modified):
            return Response(status_code=304, headers=headers)
        body = stored.body
        if fault is not None and fault.kind == "truncate":
            body = body[: len(body) // 2]
        elif fault is not None and fault.kind == "malformed":
            body = _malformed(body)
        elif fault is not None and fault.kind == "cut":
            return _CutResponse(body, headers)
        return Response(body, headers=headers, media_type="text/csv; charset=utf-8")

    @staticmethod
    async def _faulty(fault: Fault) -> Response | None:
        """The answer a fault forces, or None to answer normally (after any delay)."""
        if fault.kind == "status":
            return Response(
                f"fault injected: HTTP {fault.status}\n",
                status_code=fault.status,
                media_type="text/plain",
            )
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        return None

    def _record(self, request: Request, target: str, status: int) -> None:
        conditional = any(h in request.headers for h in ("if-none-match", "if-modified-since"))
        self.log.append(LoggedRequest(request.method, target, status, conditional))

    # -- control ----------------------------------------------------------------------------

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"faults": 0})
        try:
            spec = json.loads(await request.body())
            self.inject(Fault(**spec))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": len(self.faults)})

    async def _control_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if request.method == "DELETE":
                self.remove_file(name)
                return JSONResponse({"removed": name})
            stored = self.add_file(name, await request.body())
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"added": name, "etag": stored.etag})

    async def _control_log(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "method": e.method,
                    "target": e.target,
                    "status": e.status,
                    "conditional": e.conditional,
                }
                for e in self.log
            ]
        )


def _by_name(stored: StoredFile) -> str:
    return stored.name


def _wants_json(request: Request) -> bool:
    return request.query_params.get(
        "format"
    ) == "json" or "application/json" in request.headers.get("accept", "")


def _not_modified(request: Request, etag: str, modified: dt.datetime) -> bool:
    """RFC 9110 §13.1: If-None-Match decides when present, else If-Modified-Since."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return modified <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


def _malformed(body: bytes) -> bytes:
    """The file with a never-closed quote and a two-field row right after the header."""
    header, _, rest = body.partition(b"\n")
    return header + b'\n"kaputt;1;2\nx;y\n' + rest


class _CutResponse(Response):
    """Declares the whole body's length but sends only half of it, then ends the response."""

    def __init__(self, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(body, headers=dict(headers), media_type="text/csv; charset=utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        # Returning before the body is complete makes the server drop the connection.
        await send({"type": "http.response.body", "body": half, "more_body": True})


# The register the recorded files in data/de are of.
RECORDED_REGISTERS: tuple[str, ...] = ("DE",)


@dataclass
class WahldatenDemo:
    """A running replica (a :class:`gateway.sources.kinds.DemoHandle`)."""

    replica: WahldatenReplica
    server: RunningServer
    registers: tuple[str, ...] = RECORDED_REGISTERS

    @property
    def url(self) -> str:
        """The listing URL."""
        return self.server.url + BASE

    @property
    def address(self) -> str:
        """Where it listens, for people."""
        return self.url

    @property
    def overrides(self) -> Mapping[str, Mapping[str, Any]]:
        """Points the served registers at this replica."""
        return {name: {"url": self.url} for name in self.registers}

    async def stop(self) -> None:
        """Stop serving and release the port."""
        await self.server.stop()


async def start_replica(
    replica: WahldatenReplica | None = None, host: str = "127.0.0.1", port: int = 0
) -> WahldatenDemo:
    """Serve ``replica`` (default: the recorded files) on ``host:port`` (0: a free port)."""
    replica = replica or WahldatenReplica.recorded()
    server = await serve_asgi(replica.app, host, port)
    return WahldatenDemo(replica, server)


async def demo_replica(registers: Mapping[str, Mapping[str, Any]] | None = None) -> WahldatenDemo:
    """The replica with the recorded files, for ``gateway demo`` (``registers``: name →
    ``Source.json`` of the registers it serves; by default the one recorded)."""
    demo = await start_replica()
    if registers:
        demo.registers = tuple(registers)
    return demo
