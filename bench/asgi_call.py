"""One POST /graphql through an ASGI app called in-process (no sockets), for the
micro-benchmarks; imports nothing of the gateway, so a benchmark may load the gateway from
another tree."""

from __future__ import annotations

from typing import Any


async def post(app: Any, raw: bytes, path: str = "/graphql") -> bytes:
    """Send ``raw`` as a JSON POST to ``path``; the response body."""
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    await app(scope, receive, send)
    return b"".join(chunks)
