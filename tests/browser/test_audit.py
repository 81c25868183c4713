"""The graphql-http audit (The Guild's GraphQL-over-HTTP conformance suite) against /graphql."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.browser.conftest import Served, last_json, run_node

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_every_must_and_should_audit_passes(served: Served, tmp_path: Path) -> None:
    # scripts/node-tests keeps the report in the repository (DLS_AUDIT_REPORT).
    report = Path(os.environ.get("DLS_AUDIT_REPORT") or tmp_path / "audit.md")
    code, out, err = await run_node("audit.mjs", served.url + "/graphql", str(report))
    summary = last_json(out)
    failing = [r for r in summary["results"] if r["status"] != "ok"]
    assert failing == [], failing
    assert code == 0, err
    levels = {r["name"].split()[0] for r in summary["results"]}
    assert levels == {"MUST", "SHOULD", "MAY"}
    assert summary["counts"]["total"] == summary["counts"]["ok"] >= 60
    text = await asyncio.to_thread(report.read_text, encoding="utf-8")
    assert "failing MUST (error): 0, failing SHOULD (warn): 0" in text
    # The audit really talked to the gateway: every request went to /graphql.
    assert len(served.log.graphql()) >= summary["counts"]["total"]
