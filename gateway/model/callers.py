"""Who is asking: the caller a request was authenticated as (see :mod:`gateway.http.auth`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, and at which level. ``name`` is safe to log."""

    name: str
    level: int
    method: str  # "anonymous" | "api-key" | "jwt"
