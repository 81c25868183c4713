"""``gateway serve`` with one or more measured variants applied, for the "cheap wins".

Each variant is a change the benchmark measures one by one against the gateway as it is.
Those that are proposed changes to the gateway (``gc-freeze``, ``memo-lex``,
``doc-caches``) are applied here at start-up, in this process only, exactly as the report
words them; those that undo something the gateway already does (``no-sniffio``,
``client-per-request``) show what it is worth. Nothing in the repository is changed.

    uv run python bench/perf/serve_variant.py --variants gc-freeze,memo-lex -- serve --config …
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def gc_freeze() -> None:
    """After start-up: collect once, then move every object to the permanent generation.

    The schemas, types and datamodels (hundreds of thousands of objects) are never garbage;
    without this every full collection walks them all again.
    """
    import gateway.app

    create_app = gateway.app.create_app

    @functools.wraps(create_app)
    def frozen(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        gc.collect()
        gc.freeze()
        return app

    gateway.app.create_app = frozen


def gc_threshold() -> None:
    """A larger first-generation threshold: fewer young collections under load."""
    gc.set_threshold(50_000, 20, 20)


def memo_lex() -> None:
    """Lex each document text once: the token-count limit and the response-cache key.

    ``check_document`` and ``normalise`` lex the whole document on every request (and the
    lexer's tokens form reference cycles, left to the garbage collector); both results
    depend on the text alone, so a bounded memo per text is exact.
    """
    import gateway.limits
    import gateway.response_cache
    import gateway.schema

    count_tokens = functools.lru_cache(maxsize=1024)(gateway.limits.count_tokens)
    gateway.limits.count_tokens = count_tokens
    normalise = functools.lru_cache(maxsize=1024)(gateway.response_cache.normalise)
    gateway.response_cache.normalise = normalise


def doc_caches() -> None:
    """strawberry's ParserCache and ValidationCache on every schema (the strawberry path)."""
    from strawberry.extensions import ParserCache, ValidationCache

    import gateway.schema

    original = gateway.schema.GatewaySchema.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        extensions = list(kwargs.pop("extensions", ()))
        extensions += [lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)]
        original(self, *args, extensions=extensions, **kwargs)

    gateway.schema.GatewaySchema.__init__ = init  # type: ignore[method-assign]


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
    """A new HTTP client (no pooled keep-alive connection) for every upstream request."""
    import httpx

    import resolvers.odata

    original = resolvers.odata.ODataSource._get

    async def get(self: Any, url: str, keep: bool = True) -> Any:
        pooled = self._client
        self._client = httpx.AsyncClient(
            timeout=pooled.timeout, headers={"Accept": "application/json"}
        )
        try:
            return await original(self, url, keep)
        finally:
            await self._client.aclose()
            self._client = pooled

    resolvers.odata.ODataSource._get = get  # type: ignore[method-assign]


def fragment_cache() -> None:
    """The response cache keeps the answer's encoded bytes (``orjson.Fragment``), not its data.

    A hit then costs no encoding, and the cache holds bytes, which the garbage collector
    never walks, instead of a tree of dicts several times their size.
    """
    import orjson

    import gateway.response_cache

    cls = gateway.response_cache.ResponseCache
    original = cls.store

    class Encoded:
        errors = None

        def __init__(self, data: Any) -> None:
            self.data = data

    async def store(self: Any, key: str, result: Any, context: Any) -> None:
        if getattr(result, "errors", None) or getattr(result, "data", None) is None:
            return
        try:
            fragment = orjson.Fragment(orjson.dumps(result.data))
        except (TypeError, orjson.JSONEncodeError):
            return  # integers beyond 64 bits: not kept
        await original(self, key, Encoded(fragment), context)

    cls.store = store  # type: ignore[method-assign]


def rows_memo() -> None:
    """The OData adapter converts each cached upstream document to rows once, not per query.

    The upstream cache hands back the same document object on every hit; its rows (renamed,
    coerced) are remembered beside it. Rows are never mutated downstream, so sharing them
    is safe.
    """
    from collections import OrderedDict

    import resolvers.odata

    cls = resolvers.odata.ODataSource
    original = cls._rows
    memo: OrderedDict[tuple[int, str], tuple[Any, list[Any]]] = OrderedDict()

    def rows(self: Any, document: Any, entity: Any) -> list[Any]:
        key = (id(document), entity.name)
        found = memo.get(key)
        if found is not None and found[0] is document:
            memo.move_to_end(key)
            return found[1]
        converted: list[Any] = original(self, document, entity)
        memo[key] = (document, converted)
        if len(memo) > 4096:
            memo.popitem(last=False)
        return converted

    cls._rows = rows  # type: ignore[method-assign]


def lazy_edges() -> None:
    """Connections build ``edges`` (a dict and a base64 cursor per row) only when read."""
    from collections.abc import Sequence

    import gateway.execute

    encode = gateway.execute.encode_cursor

    class Edges(Sequence[Any]):
        __slots__ = ("_built", "_rows", "_start")

        def __init__(self, rows: list[Any], start: int) -> None:
            self._rows = rows
            self._start = start
            self._built: list[Any] | None = None

        def _all(self) -> list[Any]:
            if self._built is None:
                start = self._start
                self._built = [
                    {"cursor": encode(start + i), "node": row} for i, row in enumerate(self._rows)
                ]
            return self._built

        def __len__(self) -> int:
            return len(self._rows)

        def __getitem__(self, index: Any) -> Any:
            return self._all()[index]

        def __iter__(self) -> Any:
            return iter(self._all())

    def connection(rows: list[Any], start: int, has_next: bool, total: int | None) -> Any:
        count = len(rows)
        return {
            "nodes": rows,
            "edges": Edges(rows, start),
            "totalCount": total,
            "pageInfo": {
                "hasNextPage": has_next,
                "hasPreviousPage": start > 0,
                "startCursor": encode(start) if count else None,
                "endCursor": encode(start + count - 1) if count else None,
            },
        }

    gateway.execute._connection = connection


VARIANTS: dict[str, Callable[[], None]] = {
    "gc-freeze": gc_freeze,
    "gc-threshold": gc_threshold,
    "memo-lex": memo_lex,
    "doc-caches": doc_caches,
    "no-sniffio": no_sniffio,
    "client-per-request": client_per_request,
    "fragment-cache": fragment_cache,
    "rows-memo": rows_memo,
    "lazy-edges": lazy_edges,
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
