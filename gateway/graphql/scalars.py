"""Custom GraphQL scalars: ISO 8601 date-times and dates, and 64-bit integers."""

from __future__ import annotations

import datetime as dt
from typing import Any, NewType

import strawberry

from gateway.model.errors import BadUserInputError

__all__ = ["SCALAR_MAP", "Date", "DateTime", "Long", "parse_date", "parse_datetime"]


def parse_datetime(value: Any) -> dt.datetime:
    """An ISO 8601 date-time (offset optional) from a query argument."""
    if not isinstance(value, str):
        raise BadUserInputError("a DateTime must be an ISO 8601 string")
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadUserInputError(f"{value!r} is not an ISO 8601 date-time") from None


def parse_date(value: Any) -> dt.date:
    """An ISO 8601 calendar date from a query argument."""
    if not isinstance(value, str):
        raise BadUserInputError("a Date must be an ISO 8601 string")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadUserInputError(f"{value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


def _serialize_temporal(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _parse_long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadUserInputError("a Long must be an integer")
    try:
        return int(value)
    except ValueError:
        raise BadUserInputError(f"{value!r} is not an integer") from None


DateTime = NewType("DateTime", str)
Date = NewType("Date", str)
Long = NewType("Long", int)

SCALAR_MAP: dict[object, Any] = {
    DateTime: strawberry.scalar(
        name="DateTime",
        description=(
            "An ISO 8601 date-time. Values carry the offset the upstream gives; "
            "upstreams that give none (FT) are wall-clock times in Danish local time."
        ),
        serialize=_serialize_temporal,
        parse_value=parse_datetime,
        specified_by_url="https://www.rfc-editor.org/rfc/rfc3339",
    ),
    Date: strawberry.scalar(
        name="Date",
        description="An ISO 8601 calendar date (YYYY-MM-DD).",
        serialize=_serialize_temporal,
        parse_value=parse_date,
    ),
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit integer, written as a JSON number without loss of precision.",
        serialize=int,
        parse_value=_parse_long,
    ),
}
