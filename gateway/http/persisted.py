"""Persisted documents: Apollo's automatic persisted queries (APQ) and an allow-list.

APQ, as Apollo's clients speak it: a request carries ``extensions.persistedQuery =
{"version": 1, "sha256Hash": H}`` and no ``query``. A known ``H`` runs its document. An
unknown one is answered with ``PERSISTED_QUERY_NOT_FOUND`` (message ``PersistedQueryNotFound``),
and the client sends the document with the hash again; the gateway checks that the hash is
the document's SHA-256, runs it, and remembers it once it parsed and validated. Documents
live in the gateway's shared cache under ``apq:<hash>``, so every gateway process sharing
that cache (Redis) knows what any of them learnt.

The allow-list (``[http] persisted_documents``) is a JSON file of trusted documents:
``{"<sha256>": "<document>", ...}`` or Apollo's persisted-query manifest
(``{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}, ...]}``).
Its documents can always be run by hash. With ``persisted_only`` nothing else runs and
APQ learns nothing new.

A learnt document is kept ``[http] apq_ttl`` seconds (6 hours by default) and only up to
``apq_max_document_bytes`` (16 KiB): a longer one is kept as its tokens (no comments or
padding) if those fit, else not at all (its client keeps sending it in full). The
in-process copies count towards the cache's ``apq`` tier budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.graphql.response_cache import normalise
from gateway.http.config import HttpSettings
from gateway.http.protocol import RequestError
from gateway.model.errors import DescriptorError
from gateway.sources.cache import Cache

__all__ = ["APQ_PREFIX", "APQ_TTL", "PersistedQueries", "Resolved", "load_documents", "sha256"]

log = logging.getLogger("gateway.http.persisted")

APQ_PREFIX: Final = "apq:"
# Learnt documents are kept (by default) six hours after they were last sent in full; a
# client whose hash has expired simply sends the document again.
APQ_TTL: Final = 6 * 3600

_HASH = re.compile(r"[0-9a-fA-F]{64}")
_MANIFEST = "apollo-persisted-query-manifest"


def sha256(document: str) -> str:
    """The hex SHA-256 of a document's UTF-8 text, as APQ clients compute it."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolved:
    """The document to run, and the hash to remember once it has proved valid."""

    document: str
    learn: str | None = None


class PersistedQueries:
    """Finds the document of a request: its ``query``, a learnt hash, or the allow-list."""

    def __init__(self, settings: HttpSettings, cache: Cache | None) -> None:
        self.settings = settings
        self.cache = cache if cache is not None else Cache(namespace="dls-apq")
        self.allowed: Mapping[str, str] = (
            load_documents(Path(settings.persisted_documents))
            if settings.persisted_documents
            else {}
        )

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> Resolved:
        """The document a request runs (a :class:`RequestError` when there is none)."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if query is None:
                raise RequestError(400, "no GraphQL query found in the request")
            self._check_allowed(sha256(query) if self.settings.persisted_only else None)
            return Resolved(query)
        digest = _hash_of(persisted)
        if query is not None:
            if sha256(query) != digest:
                raise RequestError(
                    400, "provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH"
                )
            self._check_allowed(digest if self.settings.persisted_only else None)
            learn = self.settings.apq and not self.settings.persisted_only
            return Resolved(query, digest if learn and digest not in self.allowed else None)
        known = self.allowed.get(digest)
        if known is not None:
            return Resolved(known)
        if not self.settings.apq and not self.settings.persisted_only:
            raise RequestError(
                400, "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED", graphql=True
            )
        if self.settings.apq and not self.settings.persisted_only:
            learnt = await self.cache.get(APQ_PREFIX + digest)
            if isinstance(learnt, str):
                return Resolved(learnt)
        raise RequestError(400, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", graphql=True)

    async def learn(self, digest: str, document: str) -> None:
        """Remember a document that parsed and validated (if it is not too large)."""
        limit = self.settings.apq_max_document_bytes
        kept = document
        if len(document.encode("utf-8")) > limit:
            kept = normalise(document)
            if len(kept.encode("utf-8")) > limit:
                log.info("persisted query not learnt (over %d bytes): %s", limit, digest)
                return
        await self.cache.set(APQ_PREFIX + digest, kept, self.settings.apq_ttl)
        log.info("persisted query learnt: %s", digest)

    def _check_allowed(self, digest: str | None) -> None:
        if digest is not None and digest not in self.allowed:
            raise RequestError(
                403,
                "only persisted documents run here; this document is not on the allow-list",
                "PERSISTED_QUERY_NOT_ALLOWED",
            )


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, Mapping):
        raise RequestError(400, "extensions.persistedQuery must be an object")
    if persisted.get("version") != 1:
        raise RequestError(400, "unsupported persisted query version; use version 1")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _HASH.fullmatch(digest):
        raise RequestError(400, "extensions.persistedQuery.sha256Hash must be 64 hex digits")
    return digest.lower()


def load_documents(path: Path) -> Mapping[str, str]:
    """Read an allow-list of documents by SHA-256; every hash must match its document."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DescriptorError(f"persisted documents {path}: {exc}") from exc
    if isinstance(data, dict) and data.get("format") == _MANIFEST:
        operations = data.get("operations")
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise DescriptorError(f"persisted documents {path}: 'operations' must be a list")
        pairs = [(o.get("id"), o.get("body")) for o in operations]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise DescriptorError(f"persisted documents {path}: expected a JSON object of hashes")
    documents: dict[str, str] = {}
    for digest, document in pairs:
        if not isinstance(digest, str) or not isinstance(document, str):
            raise DescriptorError(f"persisted documents {path}: hashes and documents are text")
        actual = sha256(document)
        if digest.lower() != actual:
            raise DescriptorError(
                f"persisted documents {path}: {digest!r} is not the SHA-256 of its document "
                f"(that is {actual})"
            )
        documents[actual] = document
    return documents
