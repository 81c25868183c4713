"""``gateway serve`` with one or more measured variants applied, for the "cheap wins".

Each variant undoes, in this process only, one thing the gateway does for speed, so the
benchmark shows what each is worth against the gateway as it is (``no-gc-freeze``,
``no-memo-lex``, ``data-cache``, ``eager-edges``, ``core-scalars``, ``no-sniffio``,
``client-per-request``, ``no-doc-caches``), or tries a setting it does not use
(``gc-threshold``). Nothing in the repository is changed.

    uv run python bench/perf/serve_variant.py --variants no-gc-freeze -- serve --config …
"""

from __future__ import annotations

import argparse
import gc
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


class NotApplicable(SystemExit):
    """A variant whose target is gone from the code: the process ends before it serves."""


def _replace(owner: Any, name: str, value: Any) -> None:
    """``owner.name = value``, refused when ``owner`` has no ``name`` (the code moved on, and
    the variant would silently measure the gateway as it is)."""
    if not hasattr(owner, name):
        raise NotApplicable(f"variant not applicable: {owner.__name__}.{name} does not exist")
    setattr(owner, name, value)


def no_gc_freeze() -> None:
    """Leave start-up's objects in the collected generations (``gateway serve`` freezes them).

    The schemas, types and datamodels (hundreds of thousands of objects) are never garbage;
    unfrozen, every full collection walks them all again.
    """
    gc.freeze = lambda: None


def gc_threshold() -> None:
    """A larger first-generation threshold: fewer young collections under load."""
    gc.set_threshold(50_000, 20, 20)


def no_memo_lex() -> None:
    """Lex every document on every request: the token-count limit and the cache key.

    The gateway remembers both per document text (bounded); this undoes the memo.
    """
    import gateway.graphql.limits
    import gateway.graphql.response_cache

    limits, response_cache = gateway.graphql.limits, gateway.graphql.response_cache
    _replace(limits, "_count_tokens_memo", limits._count_tokens)
    _replace(response_cache, "_normalise_memo", response_cache._normalise)


def data_cache() -> None:
    """The response cache keeps each answer's data (a tree of dicts) and encodes it per hit.

    The gateway keeps the JSON bytes instead; this is how it was before.
    """
    from strawberry.types import ExecutionResult

    import gateway.graphql.response_cache

    cls = gateway.graphql.response_cache.ResponseCache

    async def get(self: Any, key: str) -> Any:
        found = await self.cache.get("data:" + key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return ExecutionResult(data=found, errors=None)

    async def store(self: Any, key: str, result: Any, context: Any) -> None:
        if getattr(result, "errors", None) or getattr(result, "data", None) is None:
            return
        if getattr(context, "notices", None):
            return
        touched: set[str] = getattr(context, "touched", set())
        ttl = min([self.max_ttl, *(self.ttls.get(name, 0.0) for name in touched)])
        if ttl > 0:
            await self.cache.set("data:" + key, result.data, ttl)

    _replace(cls, "get", get)
    _replace(cls, "store", store)


def eager_edges() -> None:
    """Build every connection's ``edges`` (a dict and a base64 cursor per row) up front.

    The gateway builds them only when a query reads them (most select only ``nodes``).
    """
    import gateway.graphql.execute

    encode = gateway.graphql.execute.encode_cursor

    def connection(rows: list[Any], start: int, has_next: bool, total: int | None) -> Any:
        edges = [{"cursor": encode(start + i), "node": row} for i, row in enumerate(rows)]
        return {
            "nodes": rows,
            "edges": edges,
            "totalCount": total,
            "pageInfo": {
                "hasNextPage": has_next,
                "hasPreviousPage": start > 0,
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    _replace(gateway.graphql.execute, "_connection", connection)


def core_scalars() -> None:
    """Every scalar of the one-pass path through graphql-core's output coercion.

    The gateway passes a value that is already of a built-in scalar's own type as it is.
    """
    import gateway.graphql.fastpath

    _replace(gateway.graphql.fastpath, "_serializer", lambda scalar: scalar.serialize)


def no_doc_caches() -> None:
    """No parse or validation cache on the strawberry path (the gateway keeps both)."""
    from strawberry.extensions import SchemaExtension

    import gateway.graphql.schema

    class Uncached(SchemaExtension):
        def __init__(self, maxsize: int | None = None) -> None:
            super().__init__()

    _replace(gateway.graphql.schema, "ParsedOnce", Uncached)
    _replace(gateway.graphql.schema, "ValidationCache", Uncached)


class _HideSniffio(importlib.abc.MetaPathFinder):
    """Search for ``sniffio`` as an uninstalled package would be searched for, and fail."""

    def __init__(self, hidden: str) -> None:
        self.hidden = hidden

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name != "sniffio":
            return None
        entries = [p for p in sys.path if p != self.hidden]
        importlib.machinery.PathFinder.find_spec(name, entries)
        raise ModuleNotFoundError("No module named 'sniffio'", name=name)


def no_sniffio() -> None:
    """As if ``sniffio`` were not installed (httpcore then fails to import it per request)."""
    import sniffio

    hidden = str(Path(sniffio.__file__).parent.parent)
    del sys.modules["sniffio"]
    sys.meta_path.insert(0, _HideSniffio(hidden))


def client_per_request() -> None:
    """A new HTTP client (no pooled keep-alive connection) for every upstream request.

    Each request's own client is held in a context variable, so concurrent requests never
    see one another's (or the pool, which stays open for anything else)."""
    import contextvars

    import httpx

    import resolvers.transport

    transport = resolvers.transport.Transport
    own: contextvars.ContextVar[httpx.AsyncClient | None] = contextvars.ContextVar(
        "own_client", default=None
    )
    pooled: property = transport.__dict__["client"]
    original = transport.attempt

    def client(self: Any) -> httpx.AsyncClient:
        found = own.get()
        if found is not None:
            return found
        assert pooled.fget is not None
        made: httpx.AsyncClient = pooled.fget(self)
        return made

    async def attempt(self: Any, url: str, **kwargs: Any) -> Any:
        fresh = httpx.AsyncClient(
            timeout=self.timeout,
            headers=self.headers,
            limits=self.limits,
            follow_redirects=self.follow_redirects,
        )
        token = own.set(fresh)
        try:
            return await original(self, url, **kwargs)
        finally:
            own.reset(token)
            await fresh.aclose()

    _replace(transport, "client", property(client))
    _replace(transport, "attempt", attempt)


VARIANTS: dict[str, Callable[[], None]] = {
    "no-gc-freeze": no_gc_freeze,
    "gc-threshold": gc_threshold,
    "no-memo-lex": no_memo_lex,
    "data-cache": data_cache,
    "eager-edges": eager_edges,
    "core-scalars": core_scalars,
    "no-doc-caches": no_doc_caches,
    "no-sniffio": no_sniffio,
    "client-per-request": client_per_request,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("gateway_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    for name in filter(None, args.variants.split(",")):
        VARIANTS[name]()
    from gateway.cli import main as gateway_main

    rest = [a for a in args.gateway_args if a != "--"]
    return gateway_main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
