"""Local replicas of the upstreams, speaking their real protocols and serving recorded data.

Each replica module offers ``async def demo_replica() -> DemoHandle`` which starts the
replica on loopback with its recorded data, for ``gateway demo`` and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["DemoHandle"]


class DemoHandle(Protocol):
    """A running replica, as the demo command sees it."""

    @property
    def address(self) -> str:
        """Where it listens, for people (``http://127.0.0.1:8123/api/``, ``sftp://…``)."""

    @property
    def overrides(self) -> Mapping[str, Mapping[str, Any]]:
        """Per register name, the ``Source.json`` options that point the gateway at it."""

    async def stop(self) -> None:
        """Stop serving and release the port."""
