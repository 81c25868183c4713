"""A web folder of Offene Wahldaten files, as a municipality publishes them.

Serves the recorded files of ``data/de/`` (all election folders flattened into one web folder)
under their real names, percent-encoded in URLs::

    GET /wahldaten/                 listing: JSON if the client accepts it, else an HTML index
    GET /wahldaten/index.json       listing as JSON
    GET /wahldaten/<name>           a file (text/csv), with ETag and Last-Modified

Listing and files answer conditional requests (``If-None-Match``, ``If-Modified-Since``) with
``304``. Tests and the demo can publish a newer file version at runtime, and inject faults (the
replica kit's :class:`Fault` vocabulary) on a file or on the listing, matched against the file
name or :data:`LISTING`: an error status, a slow or held answer, a dropped connection, a file
cut short (``truncate``, as while it is still being written), a connection broken mid-body
(``cut``), or a malformed CSV (a broken quote and a short row after the header). Every request
is logged, under the file name or :data:`LISTING`. The same controls are reachable over HTTP
under ``/_control/``.
"""

from __future__ import annotations

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
from starlette.types import Scope

from gateway.http.server import RunningServer, serve_asgi
from resolvers.replica_kit.faults import Fault, Faults
from resolvers.replica_kit.http import FaultyHttp, describe_http
from resolvers.replica_kit.log import Request as LoggedRequest, RequestLog

__all__ = [
    "DATA_DIR",
    "LISTING",
    "Fault",
    "StoredFile",
    "WahldatenDemo",
    "WahldatenReplica",
    "demo_replica",
    "recorded_files",
    "start_replica",
]

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "de"
BASE = "/wahldaten/"
LISTING = "/"  # the name of the listing in faults and the request log (no file name has a /)
# Recorded files whose name carries no timestamp are dated here.
_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the replica serves."""

    name: str
    body: bytes
    modified: dt.datetime
    etag: str


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
    faults: Faults = field(default_factory=Faults)
    log: RequestLog = field(default_factory=RequestLog)
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
    def app(self) -> FaultyHttp:
        """The ASGI application (the folder behind the faults and the request log)."""
        folder = Starlette(
            routes=[
                Route(BASE, self._listing, methods=["GET", "HEAD"]),
                Route(BASE + "index.json", self._listing, methods=["GET", "HEAD"]),
                Route(BASE + "{name:path}", self._file, methods=["GET", "HEAD"]),
                Route("/_control/faults", self._control_faults, methods=["POST", "DELETE"]),
                Route("/_control/files/{name:path}", self._control_file, methods=["PUT", "DELETE"]),
                Route("/_control/log", self._control_log, methods=["GET"]),
            ]
        )
        return FaultyHttp(
            folder,
            faults=self.faults,
            log=self.log,
            describe=_describe,
            applies=lambda request: request.path == LISTING or request.path in self.files,
            status_body=_status_body,
            malformed=_malformed,
        )

    # -- serving ----------------------------------------------------------------------------

    async def _listing(self, request: Request) -> Response:
        headers = {
            "ETag": self.listing_etag,
            "Last-Modified": format_datetime(self.changed, usegmt=True),
            "Cache-Control": "no-cache",
        }
        if _not_modified(request, headers["ETag"], self.changed):
            return Response(status_code=304, headers=headers)
        if self.json_listing and (request.url.path.endswith(".json") or _wants_json(request)):
            return JSONResponse(self.listing_json(), headers=headers)
        return HTMLResponse(self.listing_html(), headers=headers)

    async def _file(self, request: Request) -> Response:
        stored = self.files.get(request.path_params["name"])
        if stored is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        headers = {
            "ETag": stored.etag,
            "Last-Modified": format_datetime(stored.modified, usegmt=True),
        }
        if _not_modified(request, stored.etag, stored.modified):
            return Response(status_code=304, headers=headers)
        return Response(stored.body, headers=headers, media_type="text/csv; charset=utf-8")

    # -- control ----------------------------------------------------------------------------

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse({"faults": 0})
        try:
            self.faults.inject(Fault.from_json(json.loads(await request.body())))
        except ValueError as exc:
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
        return JSONResponse([entry.to_json() for entry in self.log])


def _describe(scope: Scope) -> LoggedRequest | None:
    """A request under the name of what it asks for (a file name, or :data:`LISTING`); the
    control endpoints are not logged."""
    request = describe_http(scope)
    if not request.path.startswith(BASE):
        return None
    name = request.path[len(BASE) :]
    request.path = LISTING if name in ("", "index.json") else name
    return request


def _status_body(status: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    return f"fault injected: HTTP {status}\n".encode(), [(b"content-type", b"text/plain")]


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


# The register the recorded files in data/de are of.
RECORDED_REGISTERS: tuple[str, ...] = ("DE",)


@dataclass
class WahldatenDemo:
    """A running replica (a :class:`gateway.sources.kinds.DemoHandle`)."""

    replica: WahldatenReplica
    server: RunningServer
    registers: tuple[str, ...] = RECORDED_REGISTERS

    @property
    def faults(self) -> Faults:
        """The replica's faults."""
        return self.replica.faults

    @property
    def log(self) -> RequestLog:
        """The replica's request log."""
        return self.replica.log

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

    def mirror(self, folder: Path) -> int:
        """Write the recorded files as a mirror of the published folders would hold them
        (each in its publication's sub-folder); how many were written."""
        written = 0
        for path in sorted(DATA_DIR.rglob("*.csv")):
            target = folder / path.relative_to(DATA_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            written += 1
        return written

    async def stop(self) -> None:
        """Stop serving and release the port (requests held by faults end at once)."""
        self.replica.app.stopping()
        await self.server.stop()


async def start_replica(
    replica: WahldatenReplica | None = None, host: str = "127.0.0.1", port: int = 0
) -> WahldatenDemo:
    """Serve ``replica`` (default: the recorded files) on ``host:port`` (0: a free port)."""
    replica = replica or WahldatenReplica.recorded()
    replica.app.starting()
    server = await serve_asgi(replica.app, host, port)
    return WahldatenDemo(replica, server)


async def demo_replica(registers: Mapping[str, Mapping[str, Any]] | None = None) -> WahldatenDemo:
    """The replica with the recorded files, for ``gateway demo`` (``registers``: name →
    ``Source.json`` of the registers it serves; by default the one recorded)."""
    demo = await start_replica()
    if registers:
        demo.registers = tuple(registers)
    return demo
