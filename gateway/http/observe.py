"""Operations, HTTP side: a request id, one access-log line and the metrics per request, and
structured JSON logs carrying the request id."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.sources.cache import NOTICES
from gateway.sources.metrics import REQUEST_ID, Metrics

__all__ = ["JsonFormatter", "ObserveMiddleware"]


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


class ObserveMiddleware:
    """Request ids, one log line and the metrics per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("gateway.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        # One list per request for notices (stale answers, fallbacks) from any layer.
        notices_token = NOTICES.set([])
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            label = _route_label(scope.get("path", "/"))
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(elapsed)
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
            REQUEST_ID.reset(token)
            NOTICES.reset(notices_token)
