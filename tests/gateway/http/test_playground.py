"""The playground page and its files: served by the gateway itself, examples, levels.

The page in a real browser is tested in tests/browser/test_playground_chromium.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql import parse, validate

from gateway.http import playground
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.http.support import app_of, ft_gateway
from tests.resolvers.odata import raw
from tests.support import REGISTERS

pytestmark = pytest.mark.asyncio(loop_scope="module")

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# The registers shipped with a committed datamodel that the page must cover.
OTHERS = tuple(name for name in ("CZ", "CZPREZ", "DE") if (REGISTERS / name / "General").is_dir())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(odata_replica: ODataReplica) -> AsyncIterator[httpx.AsyncClient]:
    async with ft_gateway(odata_replica, *OTHERS) as running:
        yield running


def config_of(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="dls-config">(.*?)</script>', page)
    assert match, page
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def security_model(register: str) -> dict[str, Any]:
    (path,) = (REGISTERS / register).glob("rc*/3. Security/Security_Model.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


async def test_a_browser_gets_graphiql_from_the_gateway_alone(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    page = response.text
    assert "http://" not in page
    assert "https://" not in page
    assert "//" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(a.startswith(playground.ASSETS + "/") or a == "data:," for a in assets)
    for asset in (a for a in assets if a != "data:,"):
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.content
        kind = "javascript" if asset.endswith(".js") else "css"
        assert kind in served.headers["content-type"], asset
    assert f"{playground.ASSETS}/vendor/graphiql.min.js" in assets


async def test_the_page_has_one_runnable_example_per_register(
    client: httpx.AsyncClient, odata_replica: ODataReplica
) -> None:
    config = config_of((await client.get("/graphql", headers=HTML)).text)
    assert config["endpoint"] == "/graphql"
    examples = {e["register"]: e["query"] for e in config["examples"]}
    assert set(examples) == {"FT", *OTHERS}
    schema = app_of(client).state.gateway.view_for("/graphql").graphql_schema
    for register, query in examples.items():
        assert validate(schema, parse(query)) == [], register
        assert f"query {register}_example" in query
    answer = await client.post("/graphql", json={"query": examples["FT"]})
    body = answer.json()
    assert "errors" not in body, body
    ((root, connection),) = body["data"].items()
    assert root == "FT_Afstemning"
    assert [n["id"] for n in connection["nodes"]] == [int(r["id"]) for r in raw.afstemning()[:5]]


async def test_the_page_states_each_level_from_the_security_model(
    client: httpx.AsyncClient,
) -> None:
    config = config_of((await client.get("/graphql", headers=HTML)).text)
    levels = config["levels"]
    model = security_model("FT")
    default = model["DefaultSecurity"]
    specific = {
        name: entry["SecurityLevel"]
        for entry in model.get("SpecificSecurity", [])
        for name in entry["Entities"]
    }
    assert specific["Aktør.biografi"] > default
    assert levels["FT_Aktoer"]["level"] == specific.get("Aktør", default)
    assert levels["FT_Aktoer"]["fields"]["biografi"] == specific["Aktør.biografi"]
    assert levels["FT_Aktoer"]["fields"]["navn"] == default
    assert levels["Query"]["fields"]["FT_Aktoer"] == default
    # A relation needs its target's level (the join fields are public here).
    assert levels["FT_Stemme"]["fields"]["Aktoer"] == default


async def test_each_endpoint_gets_its_own_page(client: httpx.AsyncClient) -> None:
    config = config_of((await client.get("/FT/v1", headers=HTML)).text)
    assert config["endpoint"] == "/FT/v1"
    assert config["storageNamespace"].endswith("/FT/v1")
    assert [e["register"] for e in config["examples"]] == ["FT"]
    assert not any(name.startswith("CZ") for name in config["levels"])


async def test_a_browser_asking_a_query_gets_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ __typename }"}, headers=HTML)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_no_value_can_close_the_config_script(client: httpx.AsyncClient) -> None:
    gateway = app_of(client).state.gateway
    hostile = "</script><script>alert(1)</script>"
    registers = {
        name: dataclasses.replace(r, source={**r.source, "attribution": hostile})
        for name, r in gateway.registers.items()
    }
    schema = gateway.view_for("/graphql").graphql_schema
    page = bytes(playground.page("/graphql", schema, registers).body).decode()
    assert "<script>alert(1)" not in page
    assert any(hostile in e["query"] for e in config_of(page)["examples"])


async def test_without_graphiql_there_is_no_page(odata_replica: ODataReplica) -> None:
    async with ft_gateway(odata_replica, graphiql=False) as client:
        response = await client.get("/graphql", headers=HTML)
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        asset = await client.get(f"{playground.ASSETS}/playground.js")
        assert asset.status_code == 404


async def test_vendored_files_keep_their_licences() -> None:
    vendor = playground.STATIC_DIR / "vendor"
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    for path in vendor.iterdir():
        if path.name.startswith("LICENSE."):
            assert "Permission is hereby granted" in path.read_text(encoding="utf-8")
        elif path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
    licences = set(re.findall(r"`(LICENSE\.[\w.-]+)`", readme))
    assert licences
    assert all((vendor / name).is_file() for name in licences)
