"""Micro-benchmark: a response-cache hit against a Starlette route sending the same bytes.

Both apps are called in-process through ASGI (no sockets: the HTTP server's share is the
same for both and left out), in alternating rounds in one process, and their CPU time per
request (``time.process_time``) compared as a ratio: the reference's CPU per request over
the gateway's, so 1.0× means a hit costs what sending precomputed bytes costs. Three hits:
a POST, a GET (with its ``ETag``) and an APQ request by hash only, each for the 100-row
query with a relation, FT on its local replica, rate limits and authentication on.

The gateway as committed (``git archive HEAD``) is measured the same way in a second
process, so the report shows before and after from one run.

With ``--wrk`` (``wrk`` installed), the same POST hit is also measured over HTTP: each app
served by uvicorn in a process of its own pinned to one core (``taskset``), ``wrk`` on
another, in alternating runs; requests per second compared as a ratio::

    uv run python bench/hit_path.py            # before (HEAD) and after (working tree)
    uv run python bench/hit_path.py --no-before --wrk
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]

QUERY = (
    "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
    "{ nodes { id typeid Aktoer { navn } } } }"
)
VARIABLES = {"a": 1}
MEDIA = "application/graphql-response+json"

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope(method: str, query_string: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": query_string,
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class Request:
    """One request, replayed: a fresh scope per call, the body in one message."""

    def __init__(self, method: str, body: bytes = b"", query_string: bytes = b"") -> None:
        self.method = method
        self.body = body
        self.query_string = query_string
        self.headers = [
            (b"host", b"gateway.test"),
            (b"accept", MEDIA.encode()),
            (b"user-agent", b"bench"),
        ]
        if method == "POST":
            self.headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]

    async def call(self, app: Asgi) -> tuple[int, bytes]:
        message = {"type": "http.request", "body": self.body, "more_body": False}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return message

        async def send(reply: dict[str, Any]) -> None:
            sent.append(reply)

        await app(_scope(self.method, self.query_string, list(self.headers)), receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body


def reference(body: bytes) -> Asgi:
    """A bare Starlette route sending ``body`` (precomputed) for GET and POST."""
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import Response
    from starlette.routing import Route

    async def graphql(request: StarletteRequest) -> Response:
        await request.body()
        return Response(body, media_type=MEDIA)

    return Starlette(routes=[Route("/graphql", graphql, methods=["GET", "POST"])])


async def cpu_per_call(app: Asgi, request: Request, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await request.call(app)
    return (time.process_time() - started) / calls * 1e6


async def measure(rounds: int, calls: int) -> dict[str, Any]:
    from asgi_lifespan import LifespanManager

    from gateway.http.app import create_app
    from gateway.http.auth import AuthSettings
    from gateway.http.config import Settings
    from gateway.http.ratelimit import RateLimitSettings
    from resolvers.odata.replica.server import ODataReplica

    body = json.dumps({"query": QUERY, "variables": VARIABLES}).encode()
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    requests = {
        "POST": Request("POST", body),
        "GET": Request(
            "GET",
            query_string=urlencode({"query": QUERY, "variables": json.dumps(VARIABLES)}).encode(),
        ),
        "APQ": Request(
            "POST", json.dumps({"variables": VARIABLES, "extensions": persisted}).encode()
        ),
    }
    both = {"query": QUERY, "variables": VARIABLES, "extensions": persisted}
    learn = Request("POST", json.dumps(both).encode())
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        os.symlink(ROOT / "registers" / "FT", Path(folder) / "FT")
        async with ODataReplica() as replica:
            settings = Settings(
                registers_dir=Path(folder),
                sources={"FT": {"url": replica.url, "rate": 0, "timeout": 5}},
                auth=AuthSettings.demo(),
                rate_limit=RateLimitSettings(per_key=10**9, per_ip=10**9),
            )
            app = create_app(settings)
            async with LifespanManager(app) as manager:
                gateway: Asgi = manager.app
                status, first = await learn.call(gateway)
                assert status == 200, first
                for name, request in requests.items():
                    status, answer = await request.call(gateway)
                    assert status == 200, (name, status, answer[:200])
                    assert answer == first, name
                    bare = reference(answer)
                    assert (await request.call(bare))[1] == answer
                    gw_us: list[float] = []
                    ref_us: list[float] = []
                    for _ in range(rounds):
                        gw_us.append(await cpu_per_call(gateway, request, calls))
                        ref_us.append(await cpu_per_call(bare, request, calls))
                    g, r = statistics.median(gw_us), statistics.median(ref_us)
                    out[name] = {"gateway_us": g, "bytes_route_us": r, "ratio": r / g}
                hits = app.state.gateway.view_for("/graphql").schema.response_cache.hits
                out["hits"] = hits
                out["bytes"] = len(first)
    return out


async def serve(port: int, answer: bytes | None) -> None:
    """Serve the gateway (FT on its replica) or, with ``answer``, the bytes route sending
    it, on ``port`` until killed."""
    import gc

    import uvicorn

    from gateway.http.app import create_app
    from gateway.http.auth import AuthSettings
    from gateway.http.config import Settings
    from gateway.http.ratelimit import RateLimitSettings
    from resolvers.odata.replica.server import ODataReplica

    def config(app: Any) -> uvicorn.Config:
        return uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )

    if answer is not None:
        server = uvicorn.Server(config(reference(answer)))
        gc.freeze()
        await server.serve()
        return
    with tempfile.TemporaryDirectory() as folder:
        os.symlink(ROOT / "registers" / "FT", Path(folder) / "FT")
        async with ODataReplica() as replica:
            settings = Settings(
                registers_dir=Path(folder),
                sources={"FT": {"url": replica.url, "rate": 0, "timeout": 5}},
                auth=AuthSettings.demo(),
                rate_limit=RateLimitSettings(per_key=10**9, per_ip=10**9),
            )
            server = uvicorn.Server(config(create_app(settings)))
            gc.freeze()
            await server.serve()


def _wait_for(port: int) -> None:
    import httpx

    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


def _wrk(port: int, script: Path, seconds: int) -> float:
    done = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c16",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/graphql",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk said:\n{done.stdout}\n{done.stderr}")


def over_http(tree: Path, rounds: int, seconds: int) -> dict[str, float]:
    """The POST hit of ``tree``'s gateway and the bytes route, served by uvicorn on core 0."""
    import httpx

    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    body = json.dumps({"query": QUERY, "variables": VARIABLES})
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Accept"] = "{MEDIA}"\n',
            encoding="utf-8",
        )
        this = str(Path(__file__).resolve())
        gateway = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, this, "--serve", "8471"], cwd=tree, env=env
        )
        try:
            _wait_for(8471)
            answer = httpx.post(
                "http://127.0.0.1:8471/graphql",
                content=body,
                headers={"content-type": "application/json", "accept": MEDIA},
            )
            assert answer.status_code == 200, answer.text[:200]
            payload = Path(work) / "answer.bin"
            payload.write_bytes(answer.content)
            bare = subprocess.Popen(
                ["taskset", "-c", "0", sys.executable, this, "--serve", "8472", str(payload)],
                cwd=tree,
                env=env,
            )
            try:
                _wait_for(8472)
                gw, ref = [], []
                for _ in range(rounds):
                    gw.append(_wrk(8471, script, seconds))
                    ref.append(_wrk(8472, script, seconds))
            finally:
                bare.terminate()
                bare.wait()
        finally:
            gateway.terminate()
            gateway.wait()
    g, r = statistics.median(gw), statistics.median(ref)
    return {"gateway_rps": g, "bytes_route_rps": r, "ratio": g / r}


def run_in(tree: Path, rounds: int, calls: int) -> dict[str, Any]:
    """:func:`measure` in a process of its own on ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    script = tree / "bench" / "hit_path.py"
    if not script.exists():  # a tree from before this benchmark: run this one on its code
        script = Path(__file__).resolve()
    command = [
        sys.executable,
        str(script),
        "--measure",
        "--rounds",
        str(rounds),
        "--calls",
        str(calls),
    ]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _measure_here(tree: Path, rounds: int, calls: int) -> dict[str, Any]:
    # A copy of this script run with ``tree`` first on the path measures ``tree``'s gateway.
    sys.path.insert(0, str(tree))
    return asyncio.run(measure(rounds, calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--no-before", action="store_true", help="skip the committed gateway")
    parser.add_argument("--wrk", action="store_true", help="also over HTTP (uvicorn, wrk)")
    parser.add_argument("--seconds", type=int, default=3, help="of each wrk run")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sys.path.insert(0, str(Path.cwd()))
        answer = Path(args.serve[1]).read_bytes() if len(args.serve) > 1 else None
        asyncio.run(serve(int(args.serve[0]), answer))
        return
    if args.measure:
        sys.stdout.write(json.dumps(_measure_here(Path.cwd(), args.rounds, args.calls)) + "\n")
        return
    results: dict[str, dict[str, Any]] = {}
    http: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as before:
        trees = {"after (working tree)": ROOT}
        if not args.no_before:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", before], input=archive.stdout, check=True)
            trees = {"before (HEAD)": Path(before), **trees}
        for label, tree in trees.items():
            results[label] = run_in(tree, args.rounds, args.calls)
            if args.wrk:
                http[label] = over_http(tree, max(3, args.rounds // 2), args.seconds)
    lines = [
        f"CPU per request, in-process ASGI, median of {args.rounds} rounds of {args.calls}",
        "| gateway | hit | gateway µs | bytes route µs | ratio (≥ 0.8× wanted) |",
        "|---|---|---:|---:|---:|",
    ]
    for label, found in results.items():
        for name in ("POST", "GET", "APQ"):
            row = found[name]
            lines.append(
                f"| {label} | {name} | {row['gateway_us']:.1f} | {row['bytes_route_us']:.1f} "
                f"| {row['ratio']:.2f}× |"
            )
    if len(results) == 2:
        old, new = results.values()
        for name in ("POST", "GET", "APQ"):
            speedup = old[name]["gateway_us"] / new[name]["gateway_us"]
            lines.append(f"{name}: {speedup:.2f}× less CPU per hit than before")
    if http:
        lines += [
            "",
            f"POST hit over HTTP: uvicorn on one core, wrk -c16, median of {args.seconds} s runs",
            "| gateway | gateway req/s | bytes route req/s | ratio (≥ 0.8× wanted) |",
            "|---|---:|---:|---:|",
        ]
        for label, row in http.items():
            lines.append(
                f"| {label} | {row['gateway_rps']:,.0f} | {row['bytes_route_rps']:,.0f} "
                f"| {row['ratio']:.2f}× |"
            )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
