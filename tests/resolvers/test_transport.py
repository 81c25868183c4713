"""The one upstream transport: every kind's upstream requests are in the metrics, and every
HTTP kind's upstream receives the ``X-Request-ID`` of the gateway request that caused it.

The HTTP kinds' replicas are reached through a recording proxy (uvicorn on 127.0.0.1) that
notes the request id of every request it forwards.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from gateway.model.errors import (
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from resolvers.odata.replica.server import ODataReplica
from resolvers.transport import classify, outcome_of, translate
from resolvers.valg_sftp.replica.server import start_replica as start_valg
from resolvers.volby_xml.replica.server import VolbyReplica
from resolvers.wahldaten_csv.replica.server import start_replica as start_de
from tests.support import free_port, gateway_client, register_subset

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(120)]


class Spy:
    """A reverse proxy to ``target`` noting each request's ``X-Request-ID``."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.ids: list[str] = []
        self.client = httpx.AsyncClient()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.ids.append(headers.get("x-request-id", ""))
        headers.pop("host", None)
        query = scope["query_string"].decode("latin-1")
        url = self.origin + scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        answer = await self.client.get(url, headers=headers)
        drop = {"content-length", "transfer-encoding", "content-encoding", "connection"}
        kept = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.items()
            if k.lower() not in drop
        ]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
        await send({"type": "http.response.body", "body": answer.content})


@asynccontextmanager
async def spying(target: str) -> AsyncIterator[tuple[Spy, str]]:
    spy = Spy(target)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(spy, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # the server sets a flag, not an event
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield spy, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await spy.client.aclose()


Start = Callable[[], Awaitable[Any]]

CASES: list[tuple[str, Start, str, tuple[str, ...]]] = [
    ("FT", lambda: ODataReplica().start(), "{ FT_Aktoertype(first: 3) { nodes { id type } } }", ()),
    (
        "CZ",
        lambda: VolbyReplica().start(),
        '{ CZ_TYP_ZASTUP(where: {volby: {eq: "kv2014"}}) { nodes { TYP_ZASTUP_ID NAZ_TYPU } } }',
        ("CZPREZ",),
    ),
    ("DE", start_de, "{ DE_Wahlparameter(first: 3) { nodes { wahl wahl_datum } } }", ()),
]


def _samples(exposition: str, name: str, register: str) -> dict[str, float]:
    """``{labels: value}`` of the samples of ``name`` for ``register``."""
    found: dict[str, float] = {}
    for line in exposition.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and f'register="{register}"' in match.group(1):
            found[match.group(1)] = float(match.group(2))
    return found


def _recorded(client: httpx.AsyncClient, register: str) -> tuple[float, float, float]:
    """(ok requests, bytes, latency observations) in the gateway's metrics for ``register``."""
    metrics = client.app.state.gateway.runtime.metrics  # type: ignore[attr-defined]
    text = metrics.exposition().decode()
    calls = _samples(text, "dls_upstream_calls_total", register)
    ok = sum(v for k, v in calls.items() if 'outcome="ok"' in k)
    size = sum(_samples(text, "dls_upstream_bytes_total", register).values())
    count = sum(_samples(text, "dls_upstream_request_seconds_count", register).values())
    return ok, size, count


def _through(overrides: Any, origin: str, spy_url: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, options in overrides.items():
        options = dict(options)
        url = options.get("url")
        if isinstance(url, str):
            options["url"] = url.replace(origin, spy_url)
        elif isinstance(url, list):
            options["url"] = [str(u).replace(origin, spy_url) for u in url]
        out[name] = options
    return out


@pytest.mark.parametrize(("register", "start", "query", "extra"), CASES, ids=[c[0] for c in CASES])
async def test_http_kinds_record_metrics_and_pass_the_request_id(
    register: str, start: Start, query: str, extra: tuple[str, ...]
) -> None:
    running = await start()
    try:
        target = str(running.overrides[register]["url"])
        if isinstance(running.overrides[register]["url"], list):
            target = str(running.overrides[register]["url"][0])
        async with spying(target) as (spy, spy_url):
            origin = Spy(target).origin
            overrides = _through(running.overrides, origin, spy_url)
            with register_subset(register, *extra) as registers:
                async with gateway_client(
                    registers, overrides, rate_limit=None, response_cache=False
                ) as client:
                    response = await client.post(
                        "/graphql",
                        json={"query": query},
                        headers={"X-Request-ID": f"trace-{register}"},
                    )
                    body = response.json()
                    assert "errors" not in body, body
                    assert response.headers["x-request-id"] == f"trace-{register}"
                    ok, size, count = _recorded(client, register)
        assert spy.ids, "the upstream was not asked"
        assert set(spy.ids) == {f"trace-{register}"}
        assert ok == len(spy.ids)
        assert count >= len(spy.ids)
        assert size > 0
    finally:
        await running.stop()


async def test_the_sftp_kind_records_requests_bytes_and_latency() -> None:
    running = await start_valg()
    try:
        with register_subset("VALG", "FT") as registers:
            async with gateway_client(
                registers, running.overrides, rate_limit=None, response_cache=False
            ) as client:
                body = (
                    await client.post(
                        "/graphql",
                        json={"query": "{ VALG_Storkreds(first: 3) { nodes { Nummer Navn } } }"},
                    )
                ).json()
                assert "errors" not in body, body
                ok, size, count = _recorded(client, "VALG")
                sftp = client.app.state.gateway.sources["VALG"].sftp  # type: ignore[attr-defined]
        assert ok == sftp.stats.listings + sftp.stats.downloads > 0
        assert size == sftp.stats.bytes > 0
        assert count >= ok
    finally:
        await running.stop()


async def test_one_status_classifier() -> None:
    assert classify("X", 200) is None
    assert classify("X", 304) is None
    missing = classify("X", 404)
    assert isinstance(missing, UpstreamUnavailableError)
    assert missing.extensions["status"] == 404
    assert outcome_of(missing) == "not_found"
    for status in (429, 500, 503):
        error = classify("X", status)
        assert isinstance(error, UpstreamUnavailableError)
        assert error.extensions == {"code": "UPSTREAM_UNAVAILABLE", "status": status}
        assert outcome_of(error) == "unavailable"
    refused = classify("X", 400)
    assert isinstance(refused, UpstreamInvalidError)
    assert outcome_of(refused) == "invalid"


async def test_one_error_translation() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    slow = translate("X", httpx.ReadTimeout("slow", request=request))
    assert isinstance(slow, UpstreamTimeoutError)
    assert outcome_of(slow) == "timeout"
    cut = httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body", request=request
    )
    assert isinstance(translate("X", cut), UpstreamUnavailableError)
    assert isinstance(translate("X", cut, cut_off_invalid=True), UpstreamInvalidError)
    dropped = httpx.RemoteProtocolError("Server disconnected", request=request)
    assert isinstance(translate("X", dropped, cut_off_invalid=True), UpstreamUnavailableError)
    refused = translate("X", httpx.ConnectError("refused", request=request))
    assert isinstance(refused, UpstreamUnavailableError)
    assert refused.message == "X: the upstream connection failed (ConnectError)"
