"""Micro-benchmark: the whole in-process request of the 100-row query with a relation
(upstream cached, new variables every request), the working tree against a previous commit.

Each measurement is a fresh process running the FT replica and the gateway's ASGI app (no
sockets: the app is called directly, as ``bench/shaping.py`` does); the previous commit runs
from a git worktree made for the run (``--before REV``) and removed after it. The two trees
alternate, ``--rounds`` times each; each process warms the upstream cache with every
variable set, then times ``--requests`` requests five times in CPU time
(``time.process_time``) and reports its median. Every request carries a ``nonce`` variable
that no other request uses, so the whole-response cache never hits while the upstream cache
does; the declared variable ``$a`` takes 20 values in turn. The figures are medians over the
rounds, the ratio is taken within each round.

``--query whole`` asks for every field of the rows instead (``id typeid afstemningid aktoerid
opdateringsdato``, no relation): whole rows are what FT's history records, so this is the
request of a register whose reads are recorded (each row's update time looked up in the
memo of rows already recorded).

    uv run python bench/request_path.py [--before 6f4a11b~1] [--rounds 4] [--requests 1500]
        [--query relation|whole]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asgi_call import post  # bench/: nothing of the gateway, which the child loads from a tree

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "c657527"  # the gateway before the per-request work of inputs.py and its commit

QUERIES = {
    "relation": (
        "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
        "{ nodes { id typeid Aktoer { navn } } } }"
    ),
    "whole": (
        "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
        "{ nodes { id typeid afstemningid aktoerid opdateringsdato } } }"
    ),
}
VALUES = list(range(1, 600, 30))


async def _measure(tree: Path, requests: int, query: str) -> None:
    """In a child process: CPU µs per request in ``tree`` (printed), and the answer's hash."""
    import hashlib

    import orjson
    from asgi_lifespan import LifespanManager

    from gateway.http.app import create_app
    from gateway.http.config import Settings
    from resolvers.odata.replica.server import ODataReplica

    async with ODataReplica() as replica:
        replica.log.keeping = False
        settings = Settings(
            registers_dir=tree / "registers",
            include=("FT",),
            sources={"FT": {"url": replica.url}},
            rate_limit=None,
        )
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            nonce = 0
            digest = hashlib.sha256()
            for value in VALUES:
                nonce += 1
                variables = {"a": value, "nonce": nonce}
                body = await post(
                    manager.app, orjson.dumps({"query": query, "variables": variables})
                )
                assert b'"errors"' not in body, body[:300]
                digest.update(body)
            # What the warm-up read from the upstream is written to the history by a worker
            # thread; process CPU time would charge it to the timed requests. It is the
            # cost of an upstream read (measured apart by bench/history_writes.py), not of a
            # request answered from the cache: let it finish first.
            history = getattr(app.state.gateway, "history", None)
            if history is not None:
                await history.flush()
            times = []
            for _ in range(5):
                raws = []
                for i in range(requests):
                    nonce += 1
                    variables = {"a": VALUES[i % len(VALUES)], "nonce": nonce}
                    raws.append(orjson.dumps({"query": query, "variables": variables}))
                start = time.process_time()
                for raw in raws:
                    await post(manager.app, raw)
                times.append((time.process_time() - start) / requests * 1e6)
            sys.stdout.write(f"{statistics.median(times):.1f} {digest.hexdigest()}\n")


def _child(tree: Path, requests: int, query: str) -> tuple[float, str]:
    """One measurement in a fresh process importing the gateway from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, __file__, "--child", str(tree), "--requests", str(requests)]
    command += ["--query", query]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    figure, digest = done.stdout.split()[-2:]
    return float(figure), digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the previous gateway")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--query", choices=sorted(QUERIES), default="relation")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        sys.path.insert(0, str(args.child))
        asyncio.run(_measure(args.child, args.requests, QUERIES[args.query]))
        return
    with tempfile.TemporaryDirectory(prefix="dls-request-path-") as tmp:
        base = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.before],
            check=True,
        )
        try:
            before: list[float] = []
            after: list[float] = []
            ratios: list[float] = []
            digests: set[str] = set()
            for round_ in range(args.rounds):
                order = [("before", base), ("after", ROOT)]
                if round_ % 2:
                    order.reverse()
                got: dict[str, float] = {}
                for which, tree in order:
                    got[which], digest = _child(tree, args.requests, args.query)
                    digests.add(digest)
                before.append(got["before"])
                after.append(got["after"])
                ratios.append(got["after"] / got["before"])
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False
            )
    if len(digests) != 1:
        raise SystemExit("the two gateways answered differently")
    b, a, r = statistics.median(before), statistics.median(after), statistics.median(ratios)
    sys.stdout.write(
        f"query {args.query}; {args.rounds} rounds × 5 × {args.requests} requests; CPU µs per "
        "request, medians "
        f"(the same answers: {len(digests) == 1})\n\n"
        "| tree | µs per request | rounds |\n|---|---|---|\n"
        f"| before ({args.before}) | {b:,.0f} | {' '.join(f'{x:.0f}' for x in before)} |\n"
        f"| after (working tree) | {a:,.0f} | {' '.join(f'{x:.0f}' for x in after)} |\n\n"
        f"after/before {r:.2f} (before/after {1 / r:.2f}×)\n"
    )


if __name__ == "__main__":
    main()
