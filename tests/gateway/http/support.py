"""Helpers of the HTTP tests: the gateway over the FT replica, with chosen settings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.http.auth import AuthSettings
from resolvers.odata.replica.server import ODataReplica
from tests.support import REGISTERS, gateway_client, register_subset

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

KEY_1 = "demo-level-1"


def source_json(register: str) -> dict[str, Any]:
    """A shipped register's Source.json, read directly."""
    (path,) = (REGISTERS / register).glob("rc*/Source.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@asynccontextmanager
async def ft_gateway(
    replica: ODataReplica | None = None, *registers: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway serving FT (and ``registers``) with FT on ``replica``.

    Without a replica FT points at a closed port: fine for requests that never reach it.
    """
    url = replica.url if replica is not None else "http://127.0.0.1:9/api/"
    settings.setdefault("rate_limit", None)
    settings.setdefault("auth", AuthSettings.demo())
    with register_subset("FT", *registers) as folder:
        async with gateway_client(folder, {"FT": {"url": url, "timeout": 2}}, **settings) as client:
            yield client


def app_of(client: httpx.AsyncClient) -> Any:
    return client.app  # type: ignore[attr-defined]


def write_json(path: Path, data: Mapping[str, Any] | list[Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
