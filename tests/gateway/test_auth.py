"""Authentication: API keys and JWTs (HS256, RS256, ES256, JWKS), and rate limits."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
import redis.asyncio as redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from gateway.http.config import Settings
from gateway.http.ratelimit import RateLimiter, RateLimitSettings
from gateway.model.errors import DescriptorError
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.test_security import SECURITY
from tests.support import REGISTERS, gateway_client, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "an HS256 secret of more than thirty-two bytes"
KEY = "newsroom-key-0123456789abcdefghij"
QUERY = {"query": "{ FT_Aktoertype(first: 1) { nodes { id } } }"}
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem(key: Any) -> str:
    text: str = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return text


def _auth(tmp: Path) -> AuthSettings:
    (tmp / "rsa.pem").write_text(_pem(RSA_KEY), encoding="utf-8")
    jwks = {"keys": [json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))]}
    (tmp / "jwks.json").write_text(json.dumps(jwks), encoding="utf-8")
    return AuthSettings.from_config(
        {
            "anonymous_level": 0,
            "keys": [{"name": "newsroom", "level": 2, "sha256": hash_key(KEY)}],
            "jwt": {
                "algorithms": ["HS256", "RS256", "ES256"],
                "secret": SECRET,
                "public_key_file": "rsa.pem",
                "jwks_file": "jwks.json",
                "issuer": "https://idp.test",
                "audience": "dls-gateway",
                "level_claim": "dls_level",
            },
        },
        tmp,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    odata_replica: ODataReplica, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    tmp = tmp_path_factory.mktemp("auth")
    auth = _auth(tmp)
    shutil.copytree(REGISTERS / "FT", tmp / "registers" / "FT")
    model = tmp / "registers" / "FT" / "rc00001" / "3. Security" / "Security_Model.json"
    model.write_text(json.dumps(SECURITY), encoding="utf-8")
    async with gateway_client(
        tmp / "registers", {"FT": {"url": odata_replica.url}}, auth=auth
    ) as c:
        yield c


def token(key: Any, algorithm: str, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "sub": "alice",
        "iss": "https://idp.test",
        "aud": "dls-gateway",
        "exp": now + 300,
        "nbf": now - 5,
        "dls_level": 2,
    }
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


PROBE = (
    "{ l1: FT_Aktoer(where: {id: {eq: 13}}) { nodes { biografi } } "
    "l2: FT_Stemme(first: 1) { nodes { id } } "
    "l3: FT_Afstemning(first: 1) { nodes { kommentar } } }"
)


async def _whoami(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """The caller's level: how many of the level-1, -2 and -3 probes answer."""
    response = await client.post("/graphql", json={"query": PROBE}, headers=headers)
    assert response.status_code == 200, response.text
    denied = {e["path"][0] for e in response.json().get("errors", [])}
    return sum(1 for probe in ("l1", "l2", "l3") if probe not in denied)


async def test_anonymous_gets_the_anonymous_level(client: httpx.AsyncClient) -> None:
    assert await _whoami(client, {}) == 0
    assert await _whoami(client, {"X-API-Key": KEY}) == 2


@pytest.mark.parametrize("name", ["apiKey", "apikey", "APIKEY", "ApiKey"])
async def test_the_key_parameter_is_read_in_any_case(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post(f"/graphql?{name}={KEY}", json={"query": PROBE})
    denied = {e["path"][0] for e in response.json().get("errors", [])}
    assert denied == {"l3"}  # level 2
    refused = await client.post(f"/graphql?{name}=not-a-key-0123456789abcdefghij", json=QUERY)
    assert refused.status_code == 401


@pytest.mark.parametrize("where", ["header", "query"])
async def test_api_key_in_header_or_query(client: httpx.AsyncClient, where: str) -> None:
    if where == "header":
        response = await client.post("/graphql", json=QUERY, headers={"X-API-Key": KEY})
    else:
        response = await client.post(f"/graphql?apiKey={KEY}", json=QUERY)
    assert response.status_code == 200
    assert response.json()["data"]["FT_Aktoertype"]["nodes"] == [{"id": 1}]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "not-a-key-0123456789abcdefghij"},
        {"X-API-Key": "demo-level-3"},  # demo keys are refused outside the demo
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Bearer"},
    ],
)
async def test_bad_credentials_get_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post("/graphql", json=QUERY, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [(SECRET, "HS256"), (RSA_KEY, "RS256"), (EC_KEY, "ES256")],
)
async def test_valid_jwts_get_their_level(
    client: httpx.AsyncClient, key: Any, algorithm: str
) -> None:
    for level in (1, 2, 3):
        header = {"Authorization": f"Bearer {token(key, algorithm, dls_level=level)}"}
        response = await client.post("/graphql", json=QUERY, headers=header)
        assert response.status_code == 200
        assert await _whoami(client, header) == level


async def test_a_jwt_level_below_the_field_is_denied(client: httpx.AsyncClient) -> None:
    header = {"Authorization": f"Bearer {token(SECRET, 'HS256', dls_level=0)}"}
    assert await _whoami(client, header) == 0


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 10},
        {"nbf": int(time.time()) + 600},
        {"aud": "someone-else"},
        {"iss": "https://evil.test"},
        {"exp": None},
        {"dls_level": "3"},
        {"dls_level": 9},
        {"dls_level": None},
    ],
)
async def test_bad_jwts_get_401(client: httpx.AsyncClient, claims: dict[str, Any]) -> None:
    header = {"Authorization": f"Bearer {token(SECRET, 'HS256', **claims)}"}
    response = await client.post("/graphql", json=QUERY, headers=header)
    assert response.status_code == 401


async def test_wrongly_signed_jwt_gets_401(client: httpx.AsyncClient) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for forged in (token(other, "RS256"), token("another secret of thirty-two bytes!!", "HS256")):
        response = await client.post(
            "/graphql", json=QUERY, headers={"Authorization": f"Bearer {forged}"}
        )
        assert response.status_code == 401


async def test_alg_none_is_refused(client: httpx.AsyncClient) -> None:
    unsigned = jwt.encode({"sub": "x", "dls_level": 3, "exp": time.time() + 60}, None, "none")
    response = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {unsigned}"}
    )
    assert response.status_code == 401


async def test_key_and_token_together_are_refused(client: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": KEY, "Authorization": f"Bearer {token(SECRET, 'HS256')}"}
    response = await client.post("/graphql", json=QUERY, headers=headers)
    assert response.status_code == 401


async def test_served_configuration_refuses_short_keys(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match="characters"):
        AuthSettings.from_config(
            {"keys": [{"name": "x", "level": 1, "key": "demo-level-1"}]}, tmp_path
        )
    with pytest.raises(DescriptorError, match="level"):
        AuthSettings.from_config({"keys": [{"name": "x", "level": 5, "sha256": "00"}]}, tmp_path)
    settings = Settings().merged(
        {"auth": {"keys": [{"name": "n", "level": 2, "key": KEY}]}}, base=tmp_path
    )
    assert settings.auth.keys == (ApiKey("n", 2, hash_key(KEY)),)


# --- rate limits -----------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(odata_replica: ODataReplica) -> None:
    with register_subset("FT") as registers:
        async with gateway_client(
            registers,
            {"FT": {"url": odata_replica.url}},
            rate_limit=RateLimitSettings(per_key=3, per_ip=2),
        ) as client:
            statuses = [(await client.post("/graphql", json=QUERY)).status_code for _ in range(3)]
            assert statuses == [200, 200, 429]
            limited = await client.post("/graphql", json=QUERY)
            assert 1 <= int(limited.headers["retry-after"]) <= 61
            assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            assert (await client.get("/healthz")).status_code == 200


async def test_redis_shares_counters_between_processes_and_degrades_without_it(
    redis_url: str,
) -> None:
    url = redis_url
    connection = redis.Redis.from_url(url)
    await connection.flushdb()
    await connection.aclose()
    fixed = 1_000_000_000.0  # one window for both limiters
    first = RateLimiter(RateLimitSettings(per_key=3, redis_url=url), clock=lambda: fixed)
    second = RateLimiter(RateLimitSettings(per_key=3, redis_url=url), clock=lambda: fixed)
    try:
        verdicts = [
            await limiter.hit("key:api-key:n", 3) for limiter in (first, second, first, second)
        ]
        assert verdicts[:3] == [None, None, None]
        assert verdicts[3] is not None
    finally:
        await first.aclose()
        await second.aclose()
    down = RateLimiter(RateLimitSettings(redis_url="redis://127.0.0.1:1/0"), clock=lambda: fixed)
    try:
        assert await down.hit("ip:x", 1) is None
        assert await down.hit("ip:x", 1) is not None
    finally:
        await down.aclose()
