"""Benchmark: latency of small requests while a large export streams (event-loop isolation).

The DE replica runs in this process; the gateway as a separate ``gateway serve`` process on
loopback. A trivial GraphQL query (``{ __typename }``) and ``/healthz`` are timed idle, then
again while every ``DE_Stimme`` row (170,167) is exported as CSV; the export is dropped once
the sampling time is over. Printed: p50/p99 idle and during the export, and their ratios.

    uv run python bench/isolation.py [--seconds 10] [--samples 200] [--root PATH]

``--root`` runs the gateway from another source tree (e.g. an older commit unpacked with
``git archive``), to compare before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resolvers.wahldaten_csv.replica.server import WahldatenReplica, start_replica  # noqa: E402
from tests.support import (  # noqa: E402
    register_subset,
    start_gateway_process,
    stop_gateway_process,
)

EXPORT = "/DE/v1/download/Stimme.csv"
TRIVIAL = {"query": "{ __typename }"}


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _time_query(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.post("/graphql", json=TRIVIAL)
    response.raise_for_status()
    return time.perf_counter() - started


async def _time_health(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.get("/healthz")
    response.raise_for_status()
    return time.perf_counter() - started


async def run(root: Path, seconds: float, samples: int) -> dict[str, list[float]]:
    demo = await start_replica(WahldatenReplica.recorded())
    try:
        with register_subset("DE") as registers:
            sources = {"DE__url": demo.url, "DE__rate": "0"}
            process, url = await start_gateway_process(registers, sources, cwd=root)
            try:
                return await _measure(url, seconds, samples)
            finally:
                await stop_gateway_process(process)
    finally:
        await demo.stop()


async def _measure(url: str, seconds: float, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        # Warm up: the files are read and parsed once.
        (await http.get(EXPORT, params={"where": '{"anzahl": {"eq": -1}}'})).raise_for_status()
        out["query idle"] = [await _time_query(http) for _ in range(samples)]
        out["healthz idle"] = [await _time_health(http) for _ in range(samples)]
        received = 0

        async def consume(response: httpx.Response) -> None:
            nonlocal received
            async for chunk in response.aiter_raw():
                received += len(chunk)

        async with (
            httpx.AsyncClient(base_url=url, timeout=120) as exporter,
            exporter.stream("GET", EXPORT) as response,
        ):
            response.raise_for_status()
            reader = asyncio.create_task(consume(response))
            await asyncio.sleep(0.2)
            start_bytes = received
            query: list[float] = []
            health: list[float] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                query.append(await _time_query(http))
                health.append(await _time_health(http))
                await asyncio.sleep(0.01)
            exported = received - start_bytes
            done = reader.done()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        out["query export"] = query
        out["healthz export"] = health
        out["_exported"] = [float(exported), float(seconds), float(done)]
    return out


def report(result: dict[str, list[float]]) -> str:
    exported, seconds, done = result["_exported"]
    lines = [
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; export of {EXPORT} "
        f"streamed {exported / 1e6:.1f} MB in {seconds:.0f} s of sampling"
        + (" (it finished during sampling!)" if done else " (still running when dropped)"),
        "",
        "| request | idle p50 | idle p99 | export p50 | export p99 | p50 ratio | p99 ratio | n |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("query", "healthz"):
        idle, busy = result[f"{name} idle"], result[f"{name} export"]
        i50, i99, b50, b99 = (
            _pct(idle, 0.5) * 1000,
            _pct(idle, 0.99) * 1000,
            _pct(busy, 0.5) * 1000,
            _pct(busy, 0.99) * 1000,
        )
        label = "`{ __typename }`" if name == "query" else "`/healthz`"
        lines.append(
            f"| {label} | {i50:.1f} ms | {i99:.1f} ms | {b50:.1f} ms | {b99:.1f} ms "
            f"| {b50 / i50:.0f}× | {b99 / i99:.0f}× | {len(busy)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling during the export")
    parser.add_argument("--samples", type=int, default=200, help="idle samples per request")
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree of the gateway")
    args = parser.parse_args()
    result = asyncio.run(run(args.root.resolve(), args.seconds, args.samples))
    print(report(result))  # noqa: T201


if __name__ == "__main__":
    main()
