"""Operations, HTTP side: a request id, one access-log line and the metrics per request, and
structured JSON logs carrying the request id."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.sources.cache import NOTICES
from gateway.sources.metrics import REQUEST_ID, Metrics

__all__ = ["JsonFormatter", "ObserveMiddleware", "Observed", "Observer"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _route_label(path: str) -> str:
    # Bounded label values: GraphQL endpoints by register, everything else by its first part.
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "/"
    if parts[0] == "graphql":
        return "/graphql"
    if len(parts) >= 2 and parts[1].startswith("v") and parts[1][1:].isdigit():
        rest = "/download" if len(parts) > 2 and parts[2] == "download" else ""
        return f"/{parts[0]}/{parts[1]}{rest}"[:40]
    return "/" + parts[0][:30]


class Observer:
    """The request id, the log line and the metrics of HTTP requests."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.log = logging.getLogger("gateway.access")
        # The metrics' children per label (labels are bounded, the memo too).
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def begin(self, scope: Scope) -> Observed:
        """Start observing a request: its id (the client's, if sensible) and notices."""
        incoming = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value  # the last one, as a dict of the headers would keep
        text = incoming.decode("latin-1")
        request_id = text if 0 < len(text) <= 64 else _uuid4_hex()
        # One list per request for notices (stale answers, fallbacks) from any layer.
        return Observed(
            request_id,
            (b"x-request-id", request_id.encode()),
            REQUEST_ID.set(request_id),
            NOTICES.set([]),
            time.perf_counter(),
        )

    def end(self, scope: Scope, observed: Observed, status: int) -> None:
        """The metrics and the log line of a request that has ended."""
        elapsed = time.perf_counter() - observed.started
        path = scope.get("path", "/")
        label = _route_label(path)
        counted = self._counted.get((label, status))
        if counted is None:
            counted = self.metrics.requests.labels(label, str(status))
            if len(self._counted) < _MEMO:
                self._counted[(label, status)] = counted
        counted.inc()
        timed = self._timed.get(label)
        if timed is None:
            timed = self.metrics.latency.labels(label)
            if len(self._timed) < _MEMO:
                self._timed[label] = timed
        timed.observe(elapsed)
        if self.log.isEnabledFor(logging.INFO):
            caller = scope.get("caller")
            self.log.info(
                "%s %s %d %.1f ms",
                scope.get("method"),
                scope.get("path"),
                status,
                elapsed * 1000,
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "ms": round(elapsed * 1000, 1),
                        "caller": caller.name if caller is not None else "anonymous",
                    }
                },
            )
        REQUEST_ID.reset(observed.id_token)
        NOTICES.reset(observed.notices_token)


_MEMO = 1024


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex``, without building the :class:`uuid.UUID`."""
    n = int.from_bytes(os.urandom(16), "big")
    n = (n & ~(0xC000 << 48) | (0x8000 << 48)) & ~(0xF000 << 64) | (4 << 76)
    return f"{n:032x}"


@dataclass(slots=True)
class Observed:
    """One request being observed: its id (and its header), what to reset, when it began."""

    request_id: str
    header: tuple[bytes, bytes]
    id_token: Token[str]
    notices_token: Token[Any]
    started: float
    status: int = 500

    def send(self, send: Send) -> Send:
        """``send`` with the request id on the response and its status noted."""

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        return send_with_id


class ObserveMiddleware:
    """Request ids, one log line and the metrics per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.observer = Observer(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        observed = self.observer.begin(scope)
        try:
            await self.app(scope, receive, observed.send(send))
        finally:
            self.observer.end(scope, observed, observed.status)
