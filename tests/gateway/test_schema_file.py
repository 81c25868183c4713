"""The committed schema.graphql is what the code generates."""

from __future__ import annotations

from gateway.http.app import load_gateway
from gateway.http.config import Settings
from tests.support import REGISTERS, ROOT


def test_schema_graphql_is_current() -> None:
    generated = load_gateway(Settings(registers_dir=REGISTERS)).schema_for("/graphql").as_str()
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == generated + "\n", (
        "schema.graphql is stale; regenerate it with: uv run gateway schema"
    )
