"""The source of a register delivered without ``Source.json``: no upstream to ask.

A DLS delivery describes a register's data, not where the gateway finds it. Such a register
validates and its schema is generated and served, and every query of its data answers
``UPSTREAM_UNAVAILABLE`` saying that no upstream is configured and how to configure one.
"""

from __future__ import annotations

from gateway.model.errors import UpstreamUnavailableError
from gateway.model.query import Page, Query
from gateway.sources.port import Source

__all__ = ["Unconfigured"]


class Unconfigured(Source):
    """Answers every query with a clear ``UPSTREAM_UNAVAILABLE``."""

    kind = ""

    async def ready(self) -> bool:
        return False

    async def fetch(self, query: Query) -> Page:
        register = self.register
        raise UpstreamUnavailableError(
            f"{register.name}: no upstream configured (add {register.rc}/Source.json naming "
            "the register's source kind, or configure the register's source in the gateway "
            "settings)",
            register=register.name,
        )
