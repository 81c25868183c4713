"""The whole-response cache for hot queries.

Keyed by the normalised document (its lexical tokens: whitespace and comments do not
matter, string values do), the variables, the operation name, the endpoint and the caller's
level (what decides visibility). An answer is cached only without errors and notices, for
the shortest TTL of the registers it touched, capped by ``max_ttl``.

Answers are kept as the JSON bytes of their data: a hit is sent without encoding, an entry
is a few KiB rather than a tree of dicts several times that size, and the garbage collector
has nothing in it to walk. ``data`` is decoded only if something other than the HTTP view
reads it. Each answer carries its key, so the HTTP view can find it again from the raw request
(:meth:`ResponseCache.lookup`) without parsing anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import orjson
from graphql.error import GraphQLSyntaxError
from graphql.language import Lexer, Source, TokenKind
from strawberry.types import ExecutionResult

from gateway.sources.cache import Cache

__all__ = ["CachedResult", "ResponseCache", "encode_json", "normalise"]


def normalise(document: str) -> str:
    """The document's tokens, one space apart (string tokens keep their exact value).

    Remembered for short documents (bounded): clients send the same ones again and again.
    """
    return _normalise_memo(document) if len(document) <= 8192 else _normalise(document)


@lru_cache(maxsize=1024)
def _normalise_memo(document: str) -> str:
    return _normalise(document)


def _normalise(document: str) -> str:
    lexer = Lexer(Source(document))
    parts: list[str] = []
    try:
        token = lexer.advance()
        while token.kind != TokenKind.EOF:
            if token.kind in (TokenKind.STRING, TokenKind.BLOCK_STRING):
                parts.append(json.dumps(token.value))
            else:
                parts.append(token.value or token.kind.value)
            token = lexer.advance()
    except GraphQLSyntaxError:
        return document  # never cached: it will not execute without errors
    return " ".join(parts)


def encode_json(value: Any) -> bytes:
    """Compact JSON, as the HTTP view sends it."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class CachedResult(ExecutionResult):
    """An answer as the response cache keeps it: the JSON bytes of its data.

    On a hit the data is decoded only if something reads it; an answer just stored keeps
    the data it was encoded from, so it is encoded once for the cache and the response.
    """

    def __init__(
        self, encoded: bytes, data: dict[str, object] | None = None, key: str | None = None
    ) -> None:
        self.encoded = encoded
        self._data = data
        self.key = key
        self.errors = None
        self.extensions = None

    @property
    def data(self) -> dict[str, object] | None:
        if self._data is None:
            self._data = orjson.loads(self.encoded)
        return self._data

    @data.setter
    def data(self, value: dict[str, object] | None) -> None:
        self._data = value

    def body(self) -> bytes:
        """The whole HTTP response body: ``{"data": …}``."""
        return b'{"data":' + self.encoded + b"}"


class ResponseCache:
    """Whole responses, per endpoint, in the shared cache tier."""

    def __init__(
        self,
        cache: Cache,
        endpoint: str,
        ttls: Mapping[str, float],
        max_ttl: float = 30.0,
        version: Callable[[], str] = lambda: "",
    ) -> None:
        self.cache = cache
        self.endpoint = endpoint
        self.ttls = ttls
        self.max_ttl = max_ttl
        self.version = version
        self.hits = 0
        self.misses = 0

    def key(
        self,
        document: str,
        variables: Mapping[str, Any] | None,
        operation: str | None,
        level: int,
    ) -> str:
        parts = [normalise(document), variables or {}, operation, self.endpoint, level]
        parts.append(self.version())
        try:
            body = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
        except (TypeError, orjson.JSONEncodeError):
            # integers beyond 64 bits, keys that are not strings: the standard library's way
            body = b"~" + json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
        return "response-json:" + hashlib.sha256(body).hexdigest()

    async def get(self, key: str) -> CachedResult | None:
        found = await self.cache.get(key)
        if not isinstance(found, bytes):
            self.misses += 1
            return None
        self.hits += 1
        return CachedResult(found, key=key)

    async def lookup(self, key: str) -> bytes | None:
        """The cached bytes of ``key``'s answer (a hit), or None (not counted: the request
        then goes through :meth:`get`)."""
        found = await self.cache.get(key)
        if not isinstance(found, bytes):
            return None
        self.hits += 1
        return found

    async def store(self, key: str, result: Any, context: Any) -> CachedResult | None:
        """Keep ``result`` if it may be kept; then the same answer, already encoded."""
        if getattr(result, "errors", None) or getattr(result, "data", None) is None:
            return None
        if getattr(result, "extensions", None) or getattr(context, "notices", None):
            return None  # stale or fallback answers are not kept
        touched: set[str] = getattr(context, "touched", set())
        ttl = min([self.max_ttl, *(self.ttls.get(name, 0.0) for name in touched)])
        if ttl <= 0:
            return None
        encoded = encode_json(result.data)
        await self.cache.set(key, encoded, ttl)
        return CachedResult(encoded, result.data, key)
