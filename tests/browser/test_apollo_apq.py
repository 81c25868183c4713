"""Apollo Client's automatic persisted queries (npm @apollo/client) against the gateway.

The first run sends only the hash, the gateway answers PERSISTED_QUERY_NOT_FOUND, the client
sends the document with the hash, and the gateway learns it; a second client then needs only
the hash. Checked on the requests the gateway received and on its shared cache.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from gateway.http.persisted import APQ_PREFIX
from tests.browser.conftest import Seen, Served, last_json, run_node
from tests.gateway.http.support import source_json
from tests.resolvers.odata import raw

pytestmark = pytest.mark.asyncio(loop_scope="module")


def persisted_hash(seen: Seen) -> str | None:
    extensions = seen.params().get("extensions") or {}
    persisted: dict[str, Any] = extensions.get("persistedQuery") or {}
    return persisted.get("sha256Hash")


@pytest.mark.parametrize("get", [False, True], ids=["post", "get"])
async def test_apollo_client_sends_the_hash_then_the_document_then_only_the_hash(
    served: Served, get: bool
) -> None:
    ballot = max(r["afstemningid"] for r in raw.stemme())
    expected = sum(1 for r in raw.stemme() if r["afstemningid"] == ballot)
    name = "VotesByGet" if get else "VotesByPost"
    query = (
        f"query {name}($id: Int) "
        "{ FT_Stemme(first: 0, where: {afstemningid: {eq: $id}}) { totalCount } }"
    )
    served.log.seen.clear()
    spec = {"url": served.url + "/graphql", "query": query, "variables": {"id": ballot}}
    code, out, err = await run_node("apq.mjs", json.dumps({**spec, "get": get, "runs": 2}))
    assert code == 0, out + err
    answer = {"FT_Stemme": {"__typename": "FT_StemmeConnection", "totalCount": expected}}
    assert last_json(out)["runs"] == [{"data": answer, "error": None}] * 2

    first, retry, second = served.log.graphql()
    # Run 1: the hash alone, refused as unknown; then the document with its hash.
    assert "query" not in first.params()
    assert first.method == ("GET" if get else "POST")
    refusal = json.loads(first.answer)
    assert refusal["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert refusal["errors"][0]["message"] == "PersistedQueryNotFound"
    assert first.headers["cache-control"] == "no-store"
    document = retry.params()["query"]
    digest = hashlib.sha256(document.encode()).hexdigest()
    assert persisted_hash(first) == persisted_hash(retry) == digest
    assert retry.status == 200
    # Run 2, a new client: the hash alone is enough now.
    assert "query" not in second.params()
    assert persisted_hash(second) == digest
    assert second.status == 200
    assert json.loads(second.answer)["data"] == answer
    # The document is in the gateway's shared cache (Redis when configured).
    cache = served.app.state.gateway.runtime.cache
    assert await cache.get(APQ_PREFIX + digest) == document
    if get:
        ttl = source_json("FT")["ttl"]
        assert second.headers["cache-control"] == f"public, max-age={ttl}"
        assert second.headers["etag"]
