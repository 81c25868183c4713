"""Micro-benchmark: the one-pass path's row shaping, generated functions against the previous
gateway's interpreted loop, in one process and one run.

Runs the FT replica and the gateway's ASGI app in this process (no HTTP server, no sockets:
the app is called directly), warms the upstream cache with every variable set, then sends
queries with new variables every request (a ``nonce`` variable no other request uses, as
``bench/perf/run.py`` does: the whole-response cache never hits, the upstream cache does).
"before" is ``gateway/graphql/fastpath.py`` as of ``--before`` (a git revision, read with
``git show``), with that revision's ``load_related``, swapped into the same app; "after" is
the working tree. Each round measures
both, alternating, in CPU time (``time.process_time``); the figures are medians over the
rounds, and the ratio is taken within each round.

Two levels: ``plan.run`` alone (what the one-pass path costs) and the whole request through
the ASGI app (middleware, pipeline, response cache key and store, encoding); and the cost of
compiling a plan (parse, validate, plan, and now generating the shaping functions), which a
document pays once.

    uv run python bench/shaping.py [--rounds 7] [--requests 300] [--before 37bfed1]
    uv run python bench/shaping.py --profile request|run [--query deep]   # cProfile, after
    uv run --no-project --with py-spy py-spy record -f raw -o /tmp/shaping.txt -- \\
        .venv/bin/python bench/shaping.py --profile spin --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asgi_call import post  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402

from gateway.graphql import fastpath, shaping  # noqa: E402
from gateway.graphql.execute import RequestContext  # noqa: E402
from gateway.http.app import create_app  # noqa: E402
from gateway.http.config import Settings  # noqa: E402
from resolvers.odata.replica.server import ODataReplica  # noqa: E402

# The gateway before generated shaping (the commit the one-pass path was last interpreted in).
BEFORE = "37bfed1"

QUERIES = {
    "page + relation": (
        "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
        "{ nodes { id typeid Aktoer { navn } } } }"
    ),
    "deep": (
        "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
        "{ nodes { id Afstemning { id nummer Stemme { nodes { id Aktoer { navn } } } } } } }"
    ),
    "page, 8 scalars + edges": (
        "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
        "{ totalCount edges { cursor node { id typeid afstemningid aktoerid "
        "opdateringsdato __typename } } nodes { id typeid } } }"
    ),
}
VALUES = list(range(1, 600, 30))  # afstemningid lower bounds: 20 distinct upstream pages


def old_module(revision: str, path: str, name: str) -> types.ModuleType:
    """The module at ``path`` as of ``revision`` (``git show``), as a module of its own."""
    text = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(name)
    module.__file__ = f"<{path} at {revision}>"
    sys.modules[name] = module
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def before_module(revision: str) -> types.ModuleType:
    """``gateway/graphql/fastpath.py`` as of ``revision``, with that revision's relation
    loading (``load_related`` of ``gateway/graphql/execute.py``)."""
    module = old_module(revision, "gateway/graphql/fastpath.py", "bench_fastpath_before")
    execute = old_module(revision, "gateway/graphql/execute.py", "bench_execute_before")
    module.load_related = execute.load_related
    # The pipeline catches the working tree's StepAside: the old module raises it too.
    module.StepAside = fastpath.StepAside
    return module


def like(current: fastpath.FastPath, module: types.ModuleType) -> Any:
    """A FastPath of ``module`` over the same schema, bindings and argument functions."""
    return module.FastPath(
        current.schema, current.bindings, current.roots, current.where, current.order,
        current.limits,
    )  # fmt: skip


async def call(app: Any, body: dict[str, Any]) -> bytes:
    """One POST /graphql through the ASGI app; the response body."""
    return await post(app, json.dumps(body).encode())


class Bench:
    def __init__(self, app: Any, schema: Any, runtime: Any, before: Any, after: Any) -> None:
        self.app = app
        self.schema = schema
        self.runtime = runtime
        self.paths = {"before": before, "after": after}
        self.nonce = 0

    def use(self, which: str) -> None:
        self.schema.fast_path = self.paths[which]

    async def requests(self, query: str, n: int) -> None:
        for i in range(n):
            self.nonce += 1
            variables = {"a": VALUES[i % len(VALUES)], "nonce": self.nonce}
            await call(self.app, {"query": query, "variables": variables})

    async def runs(self, query: str, n: int) -> None:
        plan = self.schema.fast_path.plan(query, None, 0)
        assert plan is not None, "the query must take the one-pass path"
        for i in range(n):
            ctx = RequestContext(self.runtime)
            await plan.run(ctx, {"a": VALUES[i % len(VALUES)]})

    async def cpu(self, work: Callable[[], Awaitable[None]], n: int) -> float:
        """CPU µs per unit of ``work`` (n units)."""
        start = time.process_time()
        await work()
        return (time.process_time() - start) / n * 1e6


async def same_answers(bench: Bench, query: str) -> None:
    """Both one-pass paths and the field-by-field path answer byte for byte the same."""
    bodies = {}
    for which in ("before", "after"):
        bench.use(which)
        bodies[which] = await call(bench.app, {"query": query, "variables": {"a": VALUES[3]}})
    bench.schema.fast_path = None
    slow = await call(bench.app, {"query": query, "variables": {"a": VALUES[3]}})
    bench.use("after")
    assert bodies["before"] == bodies["after"] == slow, "the answers differ"
    assert b'"errors"' not in slow, slow[:300]


async def measure(args: argparse.Namespace) -> None:
    write = sys.stdout.write
    before_fp = before_module(args.before)
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
            after = schema.fast_path
            bench = Bench(manager.app, schema, gateway.runtime, like(after, before_fp), after)
            for query in QUERIES.values():
                await same_answers(bench, query)
                for which in ("before", "after"):
                    bench.use(which)
                    await bench.requests(query, len(VALUES))  # upstream cache warm
            if args.profile:
                await profile(bench, args)
                return
            n = args.requests
            write(f"{args.rounds} rounds × {n} per measurement; CPU µs per unit, medians\n")
            write(f"before = fastpath.py at {args.before}; after = the working tree\n\n")
            header = "| query | level | before µs | after µs | after/before | before/after |"
            write(header + "\n")
            write("|---|---|---|---|---|---|\n")
            for label, query in QUERIES.items():
                for level in ("plan.run", "whole request"):
                    figures: dict[str, list[float]] = {"before": [], "after": []}
                    ratios: list[float] = []
                    for _ in range(args.rounds):
                        got = {}
                        for which in ("before", "after"):
                            bench.use(which)
                            if level == "plan.run":
                                work = lambda q=query: bench.runs(q, n)  # noqa: E731
                            else:
                                work = lambda q=query: bench.requests(q, n)  # noqa: E731
                            got[which] = await bench.cpu(work, n)
                            figures[which].append(got[which])
                        ratios.append(got["after"] / got["before"])
                    b = statistics.median(figures["before"])
                    a = statistics.median(figures["after"])
                    r = statistics.median(ratios)
                    write(f"| {label} | {level} | {b:,.0f} | {a:,.0f} | {r:.2f} | {1 / r:.2f}× |\n")
            write("\nCompiling a plan (a new document: parse, validate, plan)\n\n")
            write("| query | before µs | after, new shapes µs | after, shapes seen µs | ratios |\n")
            write("|---|---|---|---|---|\n")
            for label, query in QUERIES.items():
                times: dict[str, list[float]] = {"before": [], "new": [], "seen": []}
                for _ in range(args.rounds):
                    for which in times:
                        path = bench.paths["before" if which == "before" else "after"]
                        start = time.process_time()
                        for _ in range(20):
                            if which == "new":
                                shaping._compiled.cache_clear()
                            assert path._compile(query, None, 0) is not None
                        times[which].append((time.process_time() - start) / 20 * 1e6)
                b, new, seen = (statistics.median(times[w]) for w in times)
                write(
                    f"| {label} | {b:,.0f} | {new:,.0f} | {seen:,.0f} "
                    f"| {new / b:.2f} / {seen / b:.2f} |\n"
                )
            bench.use("after")


async def profile(bench: Bench, args: argparse.Namespace) -> None:
    bench.use("after")
    query = QUERIES[args.query]
    work = bench.runs if args.profile == "run" else bench.requests
    if args.profile == "spin":  # for a sampling profiler from outside (py-spy)
        await work(query, args.requests)
        return
    profiler = cProfile.Profile()
    profiler.enable()
    await work(query, args.requests)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' path")
    parser.add_argument(
        "--profile",
        choices=("request", "run", "spin"),
        help="cProfile the whole request or plan.run; spin: requests without a profiler",
    )
    parser.add_argument("--query", choices=sorted(QUERIES), default="page + relation")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
