"""Reference server: a minimal hand-written strawberry + DataLoader server over the FT replica.

What a developer would write by hand for the benchmark's FT queries, with no generation,
no limits, no security: ``FT_Stemme(first, where: {afstemningid: {gte|eq}})`` with ``nodes``,
``Stemme.Aktoer`` and ``Stemme.Afstemning`` (to-one, one DataLoader each), and
``Afstemning.Stemme(first)`` (to-many, a DataLoader). Field and type names are the
gateway's, so the same documents run on both and their answers can be compared.

Each DataLoader batch is one OData request ``$filter=(id eq 1 or id eq 2 …)`` following
``odata.nextLink``; one pooled ``httpx.AsyncClient`` with keep-alive. Options:
``--cache`` keeps every upstream response (by URL) for the server's lifetime (the
"upstream responses cached" scenario of ``run.py``); ``--document-caches`` adds strawberry's
``ParserCache`` and ``ValidationCache``. ``GET /upstream`` answers the number of upstream
requests sent so far.

    uv run python bench/perf/ref_strawberry.py --upstream http://127.0.0.1:8123/api/ \
        --port 8402 [--cache] [--document-caches]
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig


class Upstream:
    """The OData service: one pooled client, an optional response cache, a request count."""

    def __init__(self, root: str, cache: bool) -> None:
        self.root = root
        self.client: httpx.AsyncClient | None = None
        self.cache: dict[str, list[dict[str, Any]]] | None = {} if cache else None
        self.requests = 0

    async def rows(self, entity: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every row of ``entity`` matching ``params``, across ``odata.nextLink`` pages."""
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        url: str | None = f"{self.root}{quote(entity, safe='')}?{query}"
        assert url is not None
        if self.cache is not None and url in self.cache:
            return self.cache[url]
        key = url
        out: list[dict[str, Any]] = []
        assert self.client is not None
        while url is not None:
            self.requests += 1
            response = await self.client.get(url)
            response.raise_for_status()
            document = json.loads(response.content)
            out.extend(document["value"])
            url = document.get("odata.nextLink")
        if self.cache is not None:
            self.cache[key] = out
        return out


def _any_of(field: str, values: Sequence[int]) -> str:
    return "(" + " or ".join(f"{field} eq {v}" for v in values) + ")"


@strawberry.input
class IntFilter:
    """Comparisons on an integer field."""

    eq: int | None = None
    gte: int | None = None


@strawberry.input(name="FT_StemmeFilterInput")
class StemmeFilter:
    """The one filter field the benchmark uses."""

    afstemningid: IntFilter | None = None


@strawberry.type(name="FT_Aktoer")
class Aktoer:
    """An actor (member of parliament)."""

    id: int
    navn: str | None


@strawberry.type(name="FT_StemmeConnection")
class StemmeConnection:
    """A page of votes."""

    nodes: list[Stemme]


@strawberry.type(name="FT_Afstemning")
class Afstemning:
    """A ballot."""

    id: int
    nummer: int

    @strawberry.field(name="Stemme")
    async def stemme(self, info: strawberry.Info, first: int | None = None) -> StemmeConnection:
        votes = await info.context["votes_of"].load(self.id)
        return StemmeConnection(nodes=votes[: 100 if first is None else first])


@strawberry.type(name="FT_Stemme")
class Stemme:
    """A vote."""

    id: int
    typeid: int
    afstemningid: int
    aktoerid: int

    @strawberry.field(name="Aktoer")
    async def aktoer(self, info: strawberry.Info) -> Aktoer | None:
        found: Aktoer | None = await info.context["aktoer"].load(self.aktoerid)
        return found

    @strawberry.field(name="Afstemning")
    async def afstemning(self, info: strawberry.Info) -> Afstemning | None:
        found: Afstemning | None = await info.context["afstemning"].load(self.afstemningid)
        return found


def _stemme(row: dict[str, Any]) -> Stemme:
    return Stemme(
        id=row["id"],
        typeid=row["typeid"],
        afstemningid=row["afstemningid"],
        aktoerid=row["aktørid"],
    )


def make_schema(document_caches: bool) -> strawberry.Schema:
    """The reference schema (with strawberry's document caches if asked)."""

    @strawberry.type
    class Query:
        @strawberry.field(name="FT_Stemme")
        async def ft_stemme(
            self,
            info: strawberry.Info,
            first: int | None = None,
            where: StemmeFilter | None = None,
        ) -> StemmeConnection | None:
            upstream: Upstream = info.context["upstream"]
            params = {"$orderby": "id", "$top": str(100 if first is None else first)}
            condition = where.afstemningid if where is not None else None
            if condition is not None and condition.gte is not None:
                params["$filter"] = f"afstemningid ge {condition.gte}"
            elif condition is not None and condition.eq is not None:
                params["$filter"] = f"afstemningid eq {condition.eq}"
            rows = await upstream.rows("Stemme", params)
            return StemmeConnection(nodes=[_stemme(r) for r in rows])

    extensions: list[Any] = []
    if document_caches:
        extensions = [lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)]
    return strawberry.Schema(
        query=Query, extensions=extensions, config=StrawberryConfig(auto_camel_case=False)
    )


def _loaders(upstream: Upstream) -> dict[str, Any]:
    async def aktoer(keys: list[int]) -> list[Aktoer | None]:
        rows = await upstream.rows(
            "Aktør", {"$filter": _any_of("id", sorted(set(keys))), "$select": "id,navn"}
        )
        found = {r["id"]: Aktoer(id=r["id"], navn=r["navn"]) for r in rows}
        return [found.get(k) for k in keys]

    async def afstemning(keys: list[int]) -> list[Afstemning | None]:
        rows = await upstream.rows(
            "Afstemning", {"$filter": _any_of("id", sorted(set(keys))), "$select": "id,nummer"}
        )
        found = {r["id"]: Afstemning(id=r["id"], nummer=r["nummer"]) for r in rows}
        return [found.get(k) for k in keys]

    async def votes_of(keys: list[int]) -> list[list[Stemme]]:
        rows = await upstream.rows(
            "Stemme", {"$filter": _any_of("afstemningid", sorted(set(keys))), "$orderby": "id"}
        )
        grouped: dict[int, list[Stemme]] = {}
        for row in rows:
            grouped.setdefault(row["afstemningid"], []).append(_stemme(row))
        return [grouped.get(k, []) for k in keys]

    return {
        "upstream": upstream,
        "aktoer": DataLoader(load_fn=aktoer),
        "afstemning": DataLoader(load_fn=afstemning),
        "votes_of": DataLoader(load_fn=votes_of),
    }


class ReferenceView(GraphQL[dict[str, Any], None]):
    """strawberry's ASGI view with fresh DataLoaders per request."""

    def __init__(self, schema: strawberry.Schema, upstream: Upstream) -> None:
        super().__init__(schema, graphql_ide=None)
        self.upstream = upstream

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return _loaders(self.upstream)


def make_app(root: str, cache: bool, document_caches: bool) -> Starlette:
    """The reference app: ``/graphql``, ``/upstream`` (request count) and ``/healthz``."""
    upstream = Upstream(root, cache)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        upstream.client = httpx.AsyncClient(
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            timeout=30,
        )
        try:
            yield
        finally:
            await upstream.client.aclose()

    async def count(request: Request) -> Response:
        return JSONResponse({"requests": upstream.requests})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    view = ReferenceView(make_schema(document_caches), upstream)
    return Starlette(
        routes=[
            Route("/upstream", count),
            Route("/healthz", healthz),
            Route("/graphql", view, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the FT service root URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8402)
    parser.add_argument("--cache", action="store_true", help="keep upstream responses")
    parser.add_argument("--document-caches", action="store_true")
    args = parser.parse_args()
    app = make_app(args.upstream, args.cache, args.document_caches)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
