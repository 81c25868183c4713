"""A gateway served on a real loopback socket for Node and Chromium, with a request log.

These tests need Node with the packages of ``tests/node`` installed (``npm ci``) and, for the
playground, Debian's ``chromium``; ``scripts/node-tests`` installs both and runs them with
``DLS_NODE_TESTS=required``, which turns a missing tool into a failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import pytest_asyncio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.app import create_app
from gateway.http.auth import AuthSettings
from gateway.http.config import Settings
from gateway.http.server import serve_asgi
from resolvers.odata.replica.server import ODataReplica
from tests.support import ROOT, register_subset

NODE_DIR = ROOT / "tests" / "node"
REQUIRED = os.environ.get("DLS_NODE_TESTS") == "required"


def unavailable(reason: str) -> None:
    """Skip, or fail when the node tests are required."""
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def node() -> str:
    """The node binary, once the packages of tests/node are installed."""
    binary = shutil.which("node")
    if binary is None:
        unavailable("node is not installed")
    if not (NODE_DIR / "node_modules" / "graphql-http").is_dir():
        unavailable("the Node packages are not installed: run scripts/node-tests (npm ci)")
    assert binary is not None
    return binary


def chromium() -> str:
    """Debian's chromium (or $CHROMIUM)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        unavailable("chromium is not installed: apt-get install chromium")
    return path


async def run_node(
    script: str, *args: str, env: dict[str, str] | None = None, limit: float = 100
) -> tuple[int, str, str]:
    """Run a script of tests/node (for at most ``limit`` seconds): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        node(),
        str(NODE_DIR / script),
        *args,
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def last_json(output: str) -> Any:
    """The JSON of the last line a script printed."""
    return json.loads(output.strip().splitlines()[-1])


@dataclass
class Seen:
    """One request the gateway received, and the answer's status, headers and body."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes = b""
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    answer: bytes = b""

    def params(self) -> dict[str, Any]:
        """The GraphQL parameters, from the body (POST) or the query string (GET)."""
        if self.method == "POST":
            data: dict[str, Any] = json.loads(self.body)
            return data
        params: dict[str, Any] = dict(self.query)
        for name in ("variables", "extensions"):
            if params.get(name):
                params[name] = json.loads(params[name])
        return params


class RequestLog:
    """An ASGI wrapper that records every HTTP request and its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []

    def graphql(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/graphql"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        entry = Seen(scope["method"], scope["path"], query)
        self.seen.append(entry)

        async def logged_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                entry.body += message.get("body", b"")
            return message

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                entry.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                entry.answer += message.get("body", b"")
            await send(message)

        await self.app(scope, logged_receive, logged_send)


@dataclass
class Served:
    """The gateway (FT on its replica, CZ registered but not reachable) on loopback."""

    url: str
    log: RequestLog
    app: Any
    replica: ODataReplica


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[Served]:
    async with ODataReplica() as replica:
        with register_subset("FT", "CZ") as folder:
            settings = Settings(
                registers_dir=folder,
                sources={
                    "FT": {"url": replica.url, "timeout": 5},
                    "CZ": {"url": "http://127.0.0.1:9", "timeout": 1},
                },
                auth=AuthSettings.demo(),
                rate_limit=None,
            )
            app = create_app(settings)
            log = RequestLog(app)
            server = await serve_asgi(log, "127.0.0.1", 0)
            try:
                yield Served(server.url, log, app, replica)
            finally:
                await server.stop()
