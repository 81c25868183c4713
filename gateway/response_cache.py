"""The whole-response cache for hot queries.

Keyed by the normalised document (its lexical tokens: whitespace and comments do not
matter, string values do), the variables, the operation name, the endpoint and the caller's
level (what decides visibility). An answer is cached only without errors and notices, for
the shortest TTL of the registers it touched, capped by ``max_ttl``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from graphql.error import GraphQLSyntaxError
from graphql.language import Lexer, Source, TokenKind

from gateway.cache import Cache

__all__ = ["ResponseCache", "normalise"]


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
        body = json.dumps(
            [normalise(document), variables or {}, operation, self.endpoint, level, self.version()],
            sort_keys=True,
            default=str,
        )
        return "response:" + hashlib.sha256(body.encode("utf-8")).hexdigest()

    async def get(self, key: str) -> Any | None:
        found = await self.cache.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def store(self, key: str, result: Any, context: Any) -> None:
        if getattr(result, "errors", None) or getattr(result, "data", None) is None:
            return
        if getattr(context, "notices", None):
            return  # stale or fallback answers are not kept
        touched: set[str] = getattr(context, "touched", set())
        ttl = min([self.max_ttl, *(self.ttls.get(name, 0.0) for name in touched)])
        if ttl > 0:
            await self.cache.set(key, result.data, ttl)
