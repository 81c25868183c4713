"""Reference server: plain Starlette routes answering a response of a given size.

``POST /graphql`` (and ``GET``) answer ``JSONResponse(payload)``: the payload is read once
from a JSON file (the benchmark saves the gateway's own answer there, so both send the same
bytes) and serialised again for every request, as a Starlette route does.
``POST /bytes`` (and ``GET``) answer the file's bytes as they are,
``Response(body, media_type="application/json")``: no JSON work at all, the cost of
answering at all. Served by uvicorn with the same settings as ``gateway serve``.

    uv run python bench/perf/ref_starlette.py PAYLOAD.json --port 8401
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def make_app(payload: Any, body: bytes) -> Starlette:
    """The reference app answering ``payload`` encoded on ``/graphql``, ``body`` on ``/bytes``."""

    async def graphql(request: Request) -> Response:
        await request.body()  # a GraphQL route reads its request
        return JSONResponse(payload)

    async def precomputed(request: Request) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/bytes", precomputed, methods=["GET", "POST"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("payload", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8401)
    args = parser.parse_args()
    body = args.payload.read_bytes()
    payload = json.loads(body)
    uvicorn.run(
        make_app(payload, body),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
