"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import PostgresServer, RedisServer

pytest_plugins = ["tests.fixtures"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the session (no data on disk), as a URL."""
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session."""
    server = PostgresServer().start()
    yield server
    server.stop()
