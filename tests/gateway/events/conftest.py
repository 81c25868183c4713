"""Fixtures of the live-update tests: the Subscription type, gateways, replicas and waiting."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

import gateway.graphql.schema
from gateway.events.bus import EventBus, bus_for
from gateway.graphql import subscriptions
from tests.support import REGISTERS, gateway_client

# Never contacted: VALG's relations into FT need FT loaded, not reachable.
FT_UNUSED = {"FT": {"url": "http://127.0.0.1:9/api/"}}


def _schema_builds_subscriptions() -> bool:
    return "subscriptions.fields" in inspect.getsource(gateway.graphql.schema)


@pytest.fixture(autouse=True, scope="module")
def subscription_type() -> Iterator[None]:
    """The Subscription type from ``gateway.graphql.subscriptions.fields``, as the schema builds it.

    Until ``gateway/graphql/schema.py`` calls ``subscriptions.fields(builder)`` itself, the builder
    is
    given that step here, exactly as the seam describes it (for this package's modules only).
    """
    if _schema_builds_subscriptions():
        yield
        return
    build = gateway.graphql.schema._Builder.build

    def build_with_subscriptions(self: Any) -> type:
        query = build(self)
        found = subscriptions.fields(self)
        if found:
            shell = self.types.shell("Subscription")
            self.subscription = self.types.finish(
                shell, found, description="Live updates from the registers."
            )
        return query

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway.graphql.schema._Builder, "build", build_with_subscriptions)
        yield


@asynccontextmanager
async def running_gateway(
    registers: Any, overrides: Mapping[str, Mapping[str, Any]], **settings: Any
) -> AsyncIterator[Starlette]:
    """The gateway app with its lifespan running."""
    async with gateway_client(registers, overrides, **settings) as client:
        app: Starlette = client.app  # type: ignore[attr-defined]
        yield app


def bus(app: Starlette) -> EventBus:
    """The event bus of an app's runtime."""
    runtime = app.state.gateway.runtime
    return bus_for(runtime.sources, runtime.cache)


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``check()`` holds (fails the test after ``seconds``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


@contextmanager
def registers_with(
    *names: str, security: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[Path]:
    """A registers folder with the shipped ``names``; ``security`` replaces the
    Security_Model.json of the registers it names (the rest of each folder is linked)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            shipped = REGISTERS / name
            model = (security or {}).get(name)
            if model is None:
                os.symlink(shipped, Path(tmp) / name)
                continue
            copy = Path(tmp) / name
            copy.mkdir()
            os.symlink(shipped / "General", copy / "General")
            (rc,) = [p for p in shipped.iterdir() if p.name.startswith("rc")]
            (copy / rc.name).mkdir()
            for part in rc.iterdir():
                if part.name != "3. Security":
                    os.symlink(part, copy / rc.name / part.name)
            (copy / rc.name / "3. Security").mkdir()
            (copy / rc.name / "3. Security" / "Security_Model.json").write_text(json.dumps(model))
        yield Path(tmp)
