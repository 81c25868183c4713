"""Errors of the gateway, each with a stable GraphQL ``extensions.code``.

The tree::

    GatewayError
    ├── DescriptorError            a register's descriptors are broken (startup)
    ├── BadUserInputError          BAD_USER_INPUT: the query asks for something impossible
    ├── ForbiddenError             FORBIDDEN: the caller's level is too low
    ├── QueryTooComplexError       QUERY_TOO_COMPLEX
    └── UpstreamError              an upstream failed us
        ├── UpstreamUnavailableError   UPSTREAM_UNAVAILABLE (down, 5xx, connection lost)
        ├── UpstreamTimeoutError       UPSTREAM_TIMEOUT
        └── UpstreamInvalidError       UPSTREAM_INVALID (malformed, unsigned, truncated data)

Everything else raised while resolving is masked as ``INTERNAL_SERVER_ERROR`` so that no
traceback or internal detail reaches a caller.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadUserInputError",
    "DescriptorError",
    "ForbiddenError",
    "GatewayError",
    "HistoryUnavailableError",
    "QueryTooComplexError",
    "UpstreamError",
    "UpstreamInvalidError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller on purpose."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class DescriptorError(GatewayError):
    """A register descriptor is missing, malformed or inconsistent."""

    code = "DESCRIPTOR_INVALID"


class BadUserInputError(GatewayError):
    """The query's arguments cannot be satisfied (bad cursor, bad literal, ...)."""

    code = "BAD_USER_INPUT"


class HistoryUnavailableError(BadUserInputError):
    """An instant was asked of a register whose history the gateway does not keep."""

    code = "HISTORY_UNAVAILABLE"


class ForbiddenError(GatewayError):
    """The caller's security level is below what the data requires."""

    code = "FORBIDDEN"


class QueryTooComplexError(GatewayError):
    """The query exceeds a configured limit."""

    code = "QUERY_TOO_COMPLEX"


class UpstreamError(GatewayError):
    """An upstream could not give us the data."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamUnavailableError(UpstreamError):
    """The upstream is down, refused us, or answered with a server error."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer in time."""

    code = "UPSTREAM_TIMEOUT"


class UpstreamInvalidError(UpstreamError):
    """The upstream answered with data we must not use (malformed, truncated, unsigned)."""

    code = "UPSTREAM_INVALID"
