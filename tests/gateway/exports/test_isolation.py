"""Heavy work leaves the event loop: small queries and /healthz stay fast during an export.

The gateway runs as ``gateway serve`` in its own process (as deployed) over the DE replica;
the largest export there is, every ``DE_Stimme`` row as CSV, builds and orders the whole
vote set per window and encodes it. While that export streams, a trivial GraphQL query and
``/healthz`` are timed over and over; their latencies are compared with the same requests
timed idle, in the same test. The export is stopped once enough samples are taken (it would
run for minutes otherwise); that it was busy all along is checked by the bytes it delivered
during sampling.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.support import register_subset, start_gateway_process, stop_gateway_process

pytestmark = pytest.mark.asyncio(loop_scope="module")

log = logging.getLogger(__name__)

EXPORT = "/DE/v1/download/Stimme.csv"
TRIVIAL = {"query": "{ __typename }"}
SAMPLING_SECONDS = 4.0
IDLE_SAMPLES = 40


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(module_wahldaten_replica: WahldatenDemo) -> AsyncIterator[str]:
    """``gateway serve`` in its own process (as deployed), DE read from the replica."""
    with register_subset("DE") as registers:
        sources = {"DE__url": module_wahldaten_replica.url, "DE__rate": "0"}
        process, url = await start_gateway_process(registers, sources)
        try:
            yield url
        finally:
            await stop_gateway_process(process)


async def _trivial(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.post("/graphql", json=TRIVIAL)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}
    return elapsed


async def _healthz(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.get("/healthz")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_small_requests_keep_their_latency_during_a_large_export(
    gateway: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        # Warm up: the files are read and parsed once, so the export's own work is measured.
        warm = await http.get(EXPORT, params={"where": '{"anzahl": {"eq": -1}}'})
        assert warm.status_code == 200
        idle_query = [await _trivial(http) for _ in range(IDLE_SAMPLES)]
        idle_health = [await _healthz(http) for _ in range(IDLE_SAMPLES)]

        received = 0

        async def consume(response: httpx.Response) -> None:
            nonlocal received
            async for chunk in response.aiter_raw():
                received += len(chunk)

        async with (
            httpx.AsyncClient(base_url=gateway, timeout=60) as exporter,
            exporter.stream("GET", EXPORT) as response,
        ):
            assert response.status_code == 200
            total = int(response.headers["x-total-count"])
            assert total > 100_000  # the largest export there is
            reader = asyncio.create_task(consume(response))
            await asyncio.sleep(0.2)
            at_start = received
            busy_query: list[float] = []
            busy_health: list[float] = []
            deadline = time.monotonic() + SAMPLING_SECONDS
            # Sampled while the export streams (it may finish within the window: stop there).
            while time.monotonic() < deadline and not reader.done():
                busy_query.append(await _trivial(http))
                busy_health.append(await _healthz(http))
                await asyncio.sleep(0.01)
            during = received - at_start
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    idle_p50 = statistics.median(idle_query)
    report = (
        f"trivial query idle p50 {idle_p50 * 1000:.1f} ms, during export "
        f"p50 {statistics.median(busy_query) * 1000:.1f} ms "
        f"p90 {_p(busy_query, 0.9) * 1000:.1f} ms "
        f"p99 {_p(busy_query, 0.99) * 1000:.1f} ms max {max(busy_query) * 1000:.1f} ms; "
        f"/healthz idle p50 {statistics.median(idle_health) * 1000:.1f} ms, during "
        f"p50 {statistics.median(busy_health) * 1000:.1f} ms max {max(busy_health) * 1000:.1f} ms; "
        f"{len(busy_query)} samples, {during} bytes exported while sampling"
    )
    log.info("%s", report)
    # The export was working while the samples were taken (all but the last were taken before
    # it finished).
    assert during > 0, report
    # Small requests: within a few times their idle latency (plus slack for the GIL, which
    # the worker thread holds for up to a switch interval at a time) ...
    assert _p(busy_query, 0.9) <= 5 * idle_p50 + 0.05, report
    assert _p(busy_health, 0.9) <= 0.1, report
    # ... and never held up for a window's worth of work.
    assert max(busy_query) <= 0.25, report
    assert max(busy_health) <= 0.25, report
    # Enough samples that the percentiles mean something (a blocked loop gives a handful).
    assert len(busy_query) >= 20, report
