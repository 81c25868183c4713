"""Benchmark: admission control — measuring documents before they run, and attacks on a server.

Part 1, in this process: ``measure()`` + ``verdict()`` (gateway/graphql/limits.py) timed on the
fragment-doubling attack documents ``doubling(n, nested=True|False)`` of
tests/gateway/test_measure.py and on ordinary documents of about the same byte size (one
operation spreading many distinct fragments once each). Printed: µs per document, µs per KB,
time and size ratios against the smallest document, what each expands to and which limit
refuses it (also whether the document limits, size and tokens, refuse it first).

Part 2, over loopback: the FT replica in this process, the gateway as a separate
``gateway serve`` process (rate limit off). ``/healthz`` and a small query are timed idle,
each attack document is sent alone (latency, status, error code and limit, FT replica
requests), then ``/healthz`` and the small query are timed again while two client tasks send
the attack documents as fast as they can.

    uv run python bench/admission.py [--seconds 8] [--samples 200]

Bounded: every loop stops at a count or a deadline, whichever comes first (~1 minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphql import parse  # noqa: E402

from gateway.graphql.limits import LimitSettings, check_document, measure, verdict  # noqa: E402
from resolvers.odata.replica.server import ODataReplica  # noqa: E402
from tests.gateway.test_measure import doubling, schema  # noqa: E402
from tests.support import (  # noqa: E402
    register_subset,
    start_gateway_process,
    stop_gateway_process,
)

SIZES = (5, 10, 20, 40, 80, 160)
SMALL = {"query": "{ FT_Stemme(first: 3) { nodes { id typeid } } }"}
# The attack documents sent as fast as possible by the load; the others are sent alone only.
LOAD = (
    "doubling(22, nested=True)",
    "doubling(40, nested=False)",
    "20,000-id `in` list (variables)",
    "20,000-id `in` list (inline)",
)
PHASES = {
    "all four": LOAD,
    "without the `in` list (variables)": tuple(n for n in LOAD if "variables" not in n),
}
IN_QUERY = "query($ids: [Int!]) { FT_Stemme(where: {id: {in: $ids}}) { nodes { id } } }"


# Part 1: measure() + verdict() in-process


def ordinary(target_bytes: int) -> str:
    """A document of about ``target_bytes``: one operation spreading distinct fragments once
    each (what generated clients send); it expands to what it holds."""
    parts: list[str] = []
    spreads: list[str] = []
    size, i = 60, 0
    while size < target_bytes or i == 0:
        fields = ("id typeid", "id aktoerid", "id afstemningid", "typeid opdateringsdato")[i % 4]
        parts.append(f"fragment O{i} on FT_Stemme {{ {fields} }}")
        spreads.append(f"...O{i}")
        size += len(parts[-1]) + len(spreads[-1]) + 2
        i += 1
    return f"{{ FT_Stemme(first: 1) {{ nodes {{ {' '.join(spreads)} }} }} }}\n" + "\n".join(parts)


@dataclass
class Timed:
    label: str
    kind: str
    n: int
    text: str
    best_us: float = 0.0
    parse_us: float = 0.0
    fields: int = 0
    depth: int = 0
    steps: int = 0
    outcome: str = ""  # the verdict: accepted, or the limit refusing it, or the exception
    document_check: str = ""  # what check_document (size, tokens) says first


def _outcome(error: Any) -> str:
    if error is None:
        return "accepted"
    ext = error.extensions or {}
    return f"`{ext.get('limit')}` ({ext.get('measured')} > {ext.get('allowed')})"


def _best_per_call(call: Callable[[], object], budget: float, max_reps: int) -> float:
    """Best of five batches (seconds per call); a batch is sized to ~budget/5."""
    started = time.perf_counter()
    call()
    once = max(time.perf_counter() - started, 1e-7)
    reps = max(1, min(max_reps, int(budget / 5 / once)))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(reps):
            call()
        best = min(best, (time.perf_counter() - started) / reps)
    return best


def time_measurements(budget_per_doc: float = 0.25) -> list[Timed]:
    graphql_schema = schema()
    limits = LimitSettings()
    rows: list[Timed] = []
    for n in SIZES:
        nested = doubling(n, nested=True)
        flat = doubling(n, nested=False)
        rows.append(Timed(f"doubling({n}, nested=True)", "nested", n, nested))
        rows.append(Timed(f"doubling({n}, nested=False)", "flat", n, flat))
        rows.append(Timed(f"ordinary ≈ nested {n}", "ordinary", n, ordinary(len(nested))))
    for row in rows:
        document = parse(row.text, no_location=True)
        first = check_document(row.text, limits)
        row.document_check = "passes" if first is None else _outcome(first)
        row.parse_us = 1e6 * _best_per_call(
            lambda text=row.text: parse(text, no_location=True), budget_per_doc / 2, 2_000
        )

        def call(document: Any = document) -> object:
            return verdict(measure(graphql_schema, document, None, None, 100), limits, 0)

        try:
            measured = measure(graphql_schema, document, None, None, 100)
        except RecursionError:
            row.outcome = "**RecursionError** in `measure`"
            row.best_us = 1e6 * _best_per_call(lambda: _swallow(call), budget_per_doc, 200)
            continue
        row.fields, row.depth, row.steps = measured.fields, measured.depth, measured.steps
        row.outcome = _outcome(verdict(measured, limits, 0))
        row.best_us = 1e6 * _best_per_call(call, budget_per_doc, 20_000)
    return rows


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(RecursionError):
        call()


def _expanded(fields: int) -> str:
    return f"{fields:,}" if fields < 10**7 else f"~2^{fields.bit_length() - 1}"


def report_measurements(rows: list[Timed]) -> str:
    lines = [
        "| document | bytes | parse µs | measure+verdict µs | µs/KB | time ÷ smallest "
        "| bytes ÷ smallest | steps | expanded fields | depth | verdict | size/token check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    smallest = {row.kind: row for row in rows if row.n == SIZES[0]}
    for row in rows:
        base = smallest[row.kind]
        size = len(row.text.encode())
        lines.append(
            f"| `{row.label}` | {size:,} | {row.parse_us:,.0f} | {row.best_us:,.1f} "
            f"| {row.best_us / (size / 1024):,.1f} | {row.best_us / base.best_us:.1f}× "
            f"| {size / len(base.text.encode()):.1f}× | {row.steps} | {_expanded(row.fields)} "
            f"| {row.depth} | {row.outcome} | {row.document_check} |"
        )
    return "\n".join(lines)


# Part 2: a real gateway process


def attacks() -> dict[str, dict[str, Any]]:
    ids = list(range(20_000))
    inline = ", ".join(map(str, ids))
    return {
        "doubling(22, nested=True)": {"query": doubling(22, nested=True)},
        "doubling(40, nested=False)": {"query": doubling(40, nested=False)},
        "20,000-id `in` list (variables)": {"query": IN_QUERY, "variables": {"ids": ids}},
        "20,000-id `in` list (inline)": {
            "query": f"{{ FT_Stemme(where: {{id: {{in: [{inline}]}}}}) {{ nodes {{ id }} }} }}"
        },
        # Long chains under the token limit (see part 1: recursion in the measurement).
        "doubling(100, nested=True)": {"query": doubling(100, nested=True)},
        "doubling(400, nested=False)": {"query": doubling(400, nested=False)},
    }


@dataclass
class Answered:
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    replica_requests: int = 0
    sample: str = ""


def _describe(response: httpx.Response | httpx.TransportError) -> tuple[str, str]:
    if isinstance(response, httpx.TransportError):
        return f"**no response** ({type(response).__name__})", "(connection closed, no answer)"
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} (not JSON)", response.text[:200]
    errors = body.get("errors") or []
    if not errors:
        return f"{response.status_code} data", ""
    ext = errors[0].get("extensions") or {}
    code, limit = ext.get("code"), ext.get("limit")
    label = f"{response.status_code} {code}" + (f" / {limit}" if limit else "")
    return label, str(errors[0].get("message", ""))[:160]


async def _send(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> tuple[float, httpx.Response | httpx.TransportError]:
    """The latency and the response, or the transport error (a connection dropped)."""
    started = time.perf_counter()
    try:
        response: httpx.Response | httpx.TransportError = await http.post("/graphql", json=body)
    except httpx.TransportError as error:
        response = error
    return time.perf_counter() - started, response


async def _time_health(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    (await http.get("/healthz")).raise_for_status()
    return time.perf_counter() - started


async def _time_small(http: httpx.AsyncClient) -> float:
    elapsed, response = await _send(http, SMALL)
    if isinstance(response, httpx.TransportError):
        raise response
    response.raise_for_status()
    if "errors" in response.json():
        raise RuntimeError(f"the small query failed: {response.text[:300]}")
    return elapsed


async def _probe(http: httpx.AsyncClient, samples: int, seconds: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"healthz": [], "small query": []}
    deadline = time.monotonic() + seconds
    while len(out["healthz"]) < samples and time.monotonic() < deadline:
        out["healthz"].append(await _time_health(http))
        out["small query"].append(await _time_small(http))
    return out


async def serve_part(seconds: float, samples: int) -> dict[str, Any]:
    bodies = attacks()
    async with ODataReplica() as replica:
        with register_subset("FT") as registers:
            log_path = registers / "gateway.log"
            with log_path.open("wb") as log:
                sources = {"FT__url": replica.url, "FT__rate": "0"}
                process, url = await start_gateway_process(registers, sources, output=log)
                try:
                    result = await _serve_measure(url, replica, bodies, seconds, samples)
                finally:
                    await stop_gateway_process(process)
            text = log_path.read_text(encoding="utf-8", errors="replace")
            result["unhandled"] = text.count("Exception in ASGI application")
            result["recursion errors"] = text.count("RecursionError")
            return result


async def _serve_measure(
    url: str, replica: ODataReplica, bodies: dict[str, dict[str, Any]], seconds: float, samples: int
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for _ in range(20):  # warm-up: schema paths, the small query's first answer
            await _time_small(http)
            await _time_health(http)
        result["idle"] = await _probe(http, samples, seconds)

        alone: dict[str, Answered] = {}
        for name, body in bodies.items():
            answered = alone[name] = Answered()
            before = replica.data_requests()
            deadline = time.monotonic() + 2.0
            count = 40 if name in LOAD else 10
            while len(answered.latencies) < count and time.monotonic() < deadline:
                elapsed, response = await _send(http, body)
                label, message = _describe(response)
                answered.latencies.append(elapsed)
                answered.outcomes[label] += 1
                answered.sample = answered.sample or message
            answered.replica_requests = replica.data_requests() - before
        result["alone"] = alone

        for phase, names in PHASES.items():
            load = {name: bodies[name] for name in names}
            result[phase] = await _attack(url, replica, http, load, samples, seconds)
    return result


async def _attack(
    url: str,
    replica: ODataReplica,
    http: httpx.AsyncClient,
    load: dict[str, dict[str, Any]],
    samples: int,
    seconds: float,
) -> dict[str, Any]:
    """Probe ``/healthz`` and the small query while two tasks send ``load`` in a loop."""
    loaded: dict[str, Answered] = {name: Answered() for name in load}
    stop = asyncio.Event()

    async def attacker(offset: int) -> None:
        names = list(load)
        async with httpx.AsyncClient(base_url=url, timeout=30) as own:
            i = offset
            while not stop.is_set() and i < 20_000:
                name = names[i % len(names)]
                elapsed, response = await _send(own, load[name])
                loaded[name].latencies.append(elapsed)
                loaded[name].outcomes[_describe(response)[0]] += 1
                i += 1

    before = replica.data_requests()
    tasks = [asyncio.create_task(attacker(k)) for k in range(2)]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    probe = await _probe(http, samples, seconds)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "probe": probe,
        "seconds": elapsed,
        "replica requests": replica.data_requests() - before,
        "loaded": loaded,
    }


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report_serve(result: dict[str, Any]) -> str:
    lines = [
        "| request | attack load | idle p50 | idle p99 | under attack p50 | under attack p99 "
        "| p50 ratio | p99 ratio | n idle / attack |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("healthz", "small query"):
        for phase in PHASES:
            idle, busy = result["idle"][name], result[phase]["probe"][name]
            i50, i99 = _pct(idle, 0.5) * 1e3, _pct(idle, 0.99) * 1e3
            b50, b99 = _pct(busy, 0.5) * 1e3, _pct(busy, 0.99) * 1e3
            label = "`/healthz`" if name == "healthz" else f"`{SMALL['query']}`"
            lines.append(
                f"| {label} | {phase} | {i50:.1f} ms | {i99:.1f} ms | {b50:.1f} ms "
                f"| {b99:.1f} ms | {b50 / i50:.1f}× | {b99 / i99:.1f}× "
                f"| {len(idle)} / {len(busy)} |"
            )
    lines.append("")
    for phase in PHASES:
        done = result[phase]
        total = sum(len(a.latencies) for a in done["loaded"].values())
        lines.append(
            f"- Attack load {phase}: 2 client tasks, {total} attack requests in "
            f"{done['seconds']:.1f} s of sampling ({total / done['seconds']:.0f}/s); FT replica "
            f"data requests meanwhile: {done['replica requests']}."
        )
    lines += [
        f"- Unhandled exceptions logged by the gateway over the whole run: {result['unhandled']} "
        f"({result['recursion errors']} mentions of RecursionError).",
        "",
        "| attack document | bytes | answer alone (status, code / limit) | alone p50 | alone p99 "
        "| under load p50 (all four) | FT requests (alone) | n alone / load |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    bodies = attacks()
    loaded: dict[str, Answered] = result["all four"]["loaded"]
    for name, answered in result["alone"].items():
        size = len(json.dumps(bodies[name]).encode())
        outcome = ", ".join(f"{k} ×{v}" for k, v in answered.outcomes.items())
        under = loaded[name].latencies if name in loaded else []
        loaded_p50 = f"{_pct(under, 0.5) * 1e3:.1f} ms" if under else "–"
        lines.append(
            f"| {name} | {size:,} | {outcome} | {_pct(answered.latencies, 0.5) * 1e3:.1f} ms "
            f"| {_pct(answered.latencies, 0.99) * 1e3:.1f} ms | {loaded_p50} "
            f"| {answered.replica_requests} | {len(answered.latencies)} / {len(under)} |"
        )
    bad = {
        label
        for phase in PHASES
        for answered in result[phase]["loaded"].values()
        for label in answered.outcomes
        if not label.startswith("200")
    }
    if bad:
        lines += ["", f"Answers under load other than 200: {', '.join(sorted(bad))}"]
    lines += ["", "Messages (first answer of each):", ""]
    for name, answered in result["alone"].items():
        lines.append(f"- {name}: {answered.sample or '(data)'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="sampling time per phase")
    parser.add_argument("--samples", type=int, default=200, help="samples per phase at most")
    args = parser.parse_args()
    started = time.monotonic()
    print(  # noqa: T201
        f"{dt.datetime.now().isoformat(timespec='seconds')}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs\n\n## measure() + verdict() in-process\n"
    )
    print(report_measurements(time_measurements()))  # noqa: T201
    print("\n## gateway serve over the FT replica\n")  # noqa: T201
    print(report_serve(asyncio.run(serve_part(args.seconds, args.samples))))  # noqa: T201
    print(f"\n(total {time.monotonic() - started:.0f} s)")  # noqa: T201


if __name__ == "__main__":
    main()
