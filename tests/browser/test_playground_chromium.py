"""The GraphiQL playground in a real headless Chromium, offline.

The page loads from the gateway alone, shows the example tabs and the security levels, runs
a query typed into the editor, and sends the API key entered once with every request.
Expected values come from the recorded FT files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser.conftest import Served, chromium, last_json, run_node
from tests.gateway.http.support import KEY_1
from tests.resolvers.odata import raw
from tests.support import ft_credited

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_playground_runs_a_typed_query_in_chromium(served: Served, tmp_path: Path) -> None:
    browser = chromium()
    ballot = min(r["afstemningid"] for r in raw.stemme())
    count = sum(1 for r in raw.stemme() if r["afstemningid"] == ballot)
    actor_id, actor = min((i, a) for i, a in raw.aktoer().items() if a["biografi"])
    query = f"{{ FT_Stemme(where: {{afstemningid: {{eq: {ballot}}}}}) {{ totalCount }} }}"
    keyed = f"{{ FT_Aktoer(where: {{id: {{eq: {actor_id}}}}}) {{ nodes {{ navn biografi }} }} }}"
    spec = {
        "url": served.url + "/graphql",
        "query": query,
        "keyedQuery": keyed,
        "apiKey": KEY_1,
        "docsType": "FT_Aktoer",
        "screenshot": str(tmp_path / "playground.png"),
    }
    served.log.seen.clear()
    code, out, err = await run_node(
        "playground.mjs", json.dumps(spec), env={"CHROMIUM": browser}, limit=110
    )
    assert code == 0, err
    seen = last_json(out)

    # Everything came from the gateway: no CDN, no other host.
    assert seen["pageStatus"] == 200
    assert seen["external"] == []
    assert all(r["url"].startswith(served.url + "/") for r in seen["requests"])
    assert any("/_playground/vendor/graphiql.min.js" in r["url"] for r in seen["requests"])
    assert "default-src 'none'" in seen["csp"]
    assert seen["pageErrors"] == []
    assert seen["consoleErrors"] == []

    # One example tab per register, each run-ready.
    assert seen["tabs"] == ["FT_example", "CZ_example"]
    assert "query FT_example" in seen["firstTabQuery"]
    # Levels: in the documentation explorer and in the levels panel.
    # (visible text: the explorer's lists show a description's first paragraph only)
    assert re.search(r"\bbiografi: String\s+Security level 1 \(needs an API key", seen["docsType"])
    assert re.search(r"\bnavn: String\s+Security level 0 \(public\)\. navn", seen["docsType"])
    assert re.search(r"FT_Aktoer\.biografi\s*1", seen["levelsPanel"])
    assert "Security level 0 (public)" in seen["docsQuery"]

    # The typed query ran and its result shows.
    assert seen["typedQuery"] == query
    assert json.loads(seen["result"]["value"]) == ft_credited({"FT_Stemme": {"totalCount": count}})
    visible = seen["result"]["visible"].replace("\xa0", " ")
    assert re.search(rf'"totalCount":\s*{count}\b', visible)

    # The API key: without it the level-1 field is FORBIDDEN; entered once, it is sent.
    before = json.loads(seen["keyedBefore"]["value"])
    assert before["data"]["FT_Aktoer"]["nodes"] == [{"navn": actor["navn"], "biografi": None}]
    assert before["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    after = json.loads(seen["keyedAfter"]["value"])
    assert after == ft_credited(
        {"FT_Aktoer": {"nodes": [{"navn": actor["navn"], "biografi": actor["biografi"]}]}}
    )
    assert seen["storedKey"] == KEY_1
    posts = [r for r in seen["requests"] if r["method"] == "POST"]
    keyed_from = next(i for i, r in enumerate(posts) if r["apiKey"])
    assert keyed_from > 0
    assert all(r["apiKey"] == KEY_1 for r in posts[keyed_from:])
    # The gateway saw the typed document itself.
    documents = [s.params().get("query") for s in served.log.graphql() if s.method == "POST"]
    assert query in documents
    # A document run straight after typing never goes out under the previous tab's
    # operation name (the gateway would have to reject it).
    for sent in served.log.graphql():
        params = sent.params()
        name = params.get("operationName")
        if name:
            assert re.search(rf"\b(query|mutation|subscription)\s+{name}\b", params["query"])
