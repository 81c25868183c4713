"""Micro-benchmark: per-request costs outside the answer's shaping — the OData adapter on an
upstream-cache hit and the cost estimate (``limits.measure``) — against the committed code,
in one process and one run.

Runs the FT replica and the gateway's ASGI app in this process (no sockets: the app is
called directly), warms the upstream cache with every variable set, then sends queries with
new variables every request (a ``nonce`` variable: the whole-response cache never hits, the
upstream cache does), as ``bench/shaping.py`` does. "before" is
``resolvers/odata/adapter.py`` and ``gateway/graphql/limits.py`` as of ``--before`` (a git
revision, read with ``git show``) swapped into the same app (the FT sources' class and the
pipeline's ``measure``); "after" is the working tree. Each round measures both, one
after the other (which goes first alternates between rounds), in CPU time
(``time.process_time``); the figures are medians over the rounds, and the ratio is taken
within each round. ``--only neither`` is the control (both sides the working tree).

Three levels: ``ODataSource.fetch`` alone on a cache hit (the page's query and the
relation's), ``measure`` alone, and the whole request through the ASGI app.

    uv run python bench/request_costs.py [--rounds 7] [--requests 300] [--before HEAD]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from asgi_lifespan import LifespanManager  # noqa: E402
from shaping import VALUES, call, old_module  # noqa: E402

from gateway.graphql import limits, pipeline  # noqa: E402
from gateway.graphql.demand import Knowledge  # noqa: E402
from gateway.http.app import create_app  # noqa: E402
from gateway.http.config import Settings  # noqa: E402
from gateway.model.query import Query  # noqa: E402
from resolvers.odata.adapter import ODataSource  # noqa: E402
from resolvers.odata.replica.server import ODataReplica  # noqa: E402

QUERY = (
    "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
    "{ nodes { id typeid Aktoer { navn } } } }"
)


class Bench:
    def __init__(
        self, app: Any, schema: Any, runtime: Any, revision: str, only: str | None = None
    ) -> None:
        self.app = app
        self.schema = schema
        self.runtime = runtime
        self.nonce = 0
        old_adapter = old_module(revision, "resolvers/odata/adapter.py", "bench_adapter_before")
        old_limits = old_module(revision, "gateway/graphql/limits.py", "bench_limits_before")
        self.sources = [s for s in runtime.sources.values() if isinstance(s, ODataSource)]
        self.classes = {"before": old_adapter.ODataSource, "after": ODataSource}
        self.measures = {"before": old_limits.measure, "after": limits.measure}
        # Only one of the two changed between "before" and "after" (the other is after's).
        # "neither": both sides are the working tree (what the order of measuring costs).
        if only in ("adapter", "neither"):
            self.measures["before"] = limits.measure
        if only in ("limits", "neither"):
            self.classes["before"] = ODataSource
        self.queries: list[tuple[ODataSource, Query]] = []

    def use(self, which: str) -> None:
        for source in self.sources:
            source.__class__ = self.classes[which]
        pipeline.measure = self.measures[which]  # type: ignore[attr-defined]

    async def requests(self, n: int) -> None:
        for i in range(n):
            self.nonce += 1
            variables = {"a": VALUES[i % len(VALUES)], "nonce": self.nonce}
            await call(self.app, {"query": QUERY, "variables": variables})

    async def fetches(self, n: int) -> None:
        queries = self.queries
        for i in range(n):
            source, query = queries[i % len(queries)]
            await source.fetch(query)

    async def measures_(self, n: int, which: str) -> None:
        measure = self.measures[which]
        document = pipeline.parse_once(QUERY, ())
        knowledge = Knowledge(self.schema.bindings_by_type, self.runtime.observed)
        for i in range(n):
            variables = {"a": VALUES[i % len(VALUES)], "nonce": i}
            measure(self.schema._schema, document, None, variables, 100, knowledge)

    async def cpu(self, work: Callable[[], Awaitable[None]], n: int) -> float:
        """CPU µs per unit of ``work`` (n units)."""
        start = time.process_time()
        await work()
        return (time.process_time() - start) / n * 1e6


def record(bench: Bench) -> None:
    """Keep every Query the FT sources are asked (the bench's fetch level replays them)."""
    for source in bench.sources:

        async def fetch(query: Query, source: Any = source) -> Any:
            bench.queries.append((source, query))
            return await type(source).fetch(source, query)

        source.fetch = fetch  # type: ignore[method-assign]


async def same_answers(bench: Bench) -> None:
    """Before and after answer byte for byte the same."""
    bodies = {}
    for which in ("before", "after"):
        bench.use(which)
        bodies[which] = await call(bench.app, {"query": QUERY, "variables": {"a": VALUES[3]}})
    assert bodies["before"] == bodies["after"], "the answers differ"
    assert b'"errors"' not in bodies["after"], bodies["after"][:300]


async def run(args: argparse.Namespace) -> None:
    write = sys.stdout.write
    async with ODataReplica() as replica:
        replica.log.keeping = False
        settings = Settings(
            registers_dir=ROOT / "registers",
            include=("FT",),
            sources={"FT": {"url": replica.url}},
            rate_limit=None,
        )
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            gateway = app.state.gateway
            schema = gateway.view_for("/graphql").schema
            bench = Bench(manager.app, schema, gateway.runtime, args.before, args.only)
            await same_answers(bench)
            record(bench)
            for which in ("before", "after"):
                bench.use(which)
                await bench.requests(len(VALUES))  # upstream cache warm, queries recorded
            for source in bench.sources:
                del source.fetch  # the class's method again
            n = args.requests
            write(f"{args.rounds} rounds × {n} per measurement; CPU µs per unit, medians\n")
            swapped = {
                None: "adapter.py and limits.py",
                "adapter": "adapter.py",
                "limits": "limits.py",
                "neither": "neither module (a control)",
            }
            write(f"before = {swapped[args.only]} at {args.before}; after = the working tree\n")
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                await bench.measures_(n * 10, "after")
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
                return
            write(f"{len(bench.queries)} recorded source queries replayed at the fetch level\n\n")
            write("| level | before µs | after µs | after/before | before/after |\n")
            write("|---|---|---|---|---|\n")
            levels: dict[str, Callable[[str], Callable[[], Awaitable[None]]]] = {
                "ODataSource.fetch (cache hit)": lambda w: lambda: bench.fetches(n),
                "limits.measure": lambda w: lambda: bench.measures_(n, w),
                "whole request": lambda w: lambda: bench.requests(n),
            }
            for label, work in levels.items():
                figures: dict[str, list[float]] = {"before": [], "after": []}
                ratios: list[float] = []
                for round_ in range(args.rounds):
                    got = {}
                    # Whichever is measured second runs faster (a control run with both
                    # sides the same shows ~10 %): the order alternates between rounds.
                    order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                    for which in order:
                        bench.use(which)
                        got[which] = await bench.cpu(work(which), n)
                        figures[which].append(got[which])
                    ratios.append(got["after"] / got["before"])
                b = statistics.median(figures["before"])
                a = statistics.median(figures["after"])
                r = statistics.median(ratios)
                write(f"| {label} | {b:,.1f} | {a:,.1f} | {r:.2f} | {1 / r:.2f}× |\n")
            bench.use("after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--before", default="HEAD", help="git revision of the 'before' code")
    parser.add_argument("--profile", action="store_true", help="cProfile limits.measure, after")
    parser.add_argument(
        "--only",
        choices=("adapter", "limits", "neither"),
        help="swap only this module for 'before' (neither: a control, both the working tree)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
