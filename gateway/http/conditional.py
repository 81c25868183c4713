"""HTTP caching of GET answers, so that a browser or a CDN can keep them.

A successful GET answer (no errors) gets ``Cache-Control`` with a ``max-age`` derived from
the freshness of the registers the query touches (the smallest ``ttl`` of their Source.json,
unless ``[http] max_age`` sets one), ``public`` for anonymous callers and ``private`` for
everyone else, and a strong ``ETag`` of its body; a matching ``If-None-Match`` gets ``304``.
An answer with errors is never cached.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final

from graphql import GraphQLSchema

from gateway.graphql.selection import selected_types

__all__ = ["VARY", "Freshness", "cache_control", "entity_tag", "not_modified", "register_ttls"]

# The answer depends on the media type asked for and on who asks.
VARY: Final = "Accept, Authorization, X-API-Key"


# Documents longer than this are remembered by their SHA-256, not their text, so that the
# memo holds at most ``cache_size`` times this many bytes of documents.
_MEMO_TEXT = 2048


class Freshness:
    """How long answers of one schema stay fresh, per document (memoised, bounded)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        ttls: Mapping[str, int],
        max_age: int | None = None,
        cache_size: int = 128,
    ) -> None:
        self.schema = schema
        self.ttls = dict(ttls)
        self.max_age = max_age
        # Longest names first, so that "CZPREZ_" is not taken for "CZ_".
        self._prefixes = sorted(self.ttls, key=len, reverse=True)
        self.cache_size = cache_size
        self._memo: OrderedDict[str, int] = OrderedDict()

    def seconds(self, document: str) -> int:
        """``max-age`` for answers to ``document``."""
        key = document
        if len(document) > _MEMO_TEXT:
            key = "sha256:" + hashlib.sha256(document.encode("utf-8")).hexdigest()
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
            return found
        seconds = self._memo[key] = self._seconds(document)
        if len(self._memo) > self.cache_size:
            self._memo.popitem(last=False)
        return seconds

    def _seconds(self, document: str) -> int:
        if self.max_age is not None:
            return self.max_age
        touched = self.registers(document)
        # Nothing of a register (only __typename): the shortest TTL of the registers.
        ttls = [self.ttls[r] for r in touched] or [
            ttl for name, ttl in self.ttls.items() if "_" not in name
        ]
        return min(ttls, default=0)

    def registers(self, document: str) -> set[str]:
        """The registers whose types a document selects."""
        return {r for r in map(self._register, selected_types(self.schema, document)) if r}

    def _register(self, type_name: str) -> str | None:
        # A register's name ("FT") prefixes its types ("FT_Aktoer…"); an entity's type name
        # ("FT_Events", given its own TTL) prefixes its connection, edge and filter types.
        return next(
            (r for r in self._prefixes if type_name.startswith(r if "_" in r else r + "_")),
            None,
        )


def register_ttls(registers: Iterable[Any]) -> dict[str, int]:
    """``ttl`` of each register's Source.json (0 when absent or not a number)."""
    out: dict[str, int] = {}
    for register in registers:
        ttl = register.source.get("ttl")
        valid = isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0
        out[register.name] = int(ttl) if valid else 0
        events = getattr(register, "events", None)
        if events is not None:
            # The gateway's own record, growing as it records: never fresh for long.
            out[events.graphql_name] = 0
    return out


def cache_control(public: bool, max_age: int) -> str:
    """``Cache-Control`` of a cacheable answer."""
    scope = "public" if public else "private"
    return f"{scope}, max-age={max_age}" if max_age > 0 else f"{scope}, no-cache"


def entity_tag(media_type: str, body: bytes) -> str:
    """A strong ETag of a representation (its media type and its bytes)."""
    digest = hashlib.sha256(media_type.encode("ascii") + b"\n" + body).digest()
    return '"' + base64.urlsafe_b64encode(digest[:18]).decode("ascii") + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))
