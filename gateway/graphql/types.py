"""The GraphQL types every generated schema shares: operation filters, sorting, paging."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.schema_directive import Location
from strawberry.types.unset import UNSET

from gateway.graphql.scalars import Date, DateTime, Long
from gateway.model.datamodel import ScalarType

__all__ = [
    "OPERATION_INPUTS",
    "BooleanOperationFilterInput",
    "DateOperationFilterInput",
    "DateTimeOperationFilterInput",
    "FloatOperationFilterInput",
    "IntOperationFilterInput",
    "LongOperationFilterInput",
    "PageInfo",
    "SortEnumType",
    "StringOperationFilterInput",
    "python_type",
    "security_level",
]


@strawberry.schema_directive(
    locations=[Location.OBJECT, Location.FIELD_DEFINITION],
    name="securityLevel",
    description="The security level a caller needs to see this type or field (0 = public).",
)
class security_level:
    """``@securityLevel(level: N)``."""

    level: int


@strawberry.enum(description="Sort direction.")
class SortEnumType(Enum):
    """Ascending or descending."""

    ASC = "ASC"
    DESC = "DESC"


@strawberry.type(description="Where a connection's window stands in the whole result.")
class PageInfo:
    """Relay page info."""

    hasNextPage: bool
    hasPreviousPage: bool
    startCursor: str | None
    endCursor: str | None


def _op(kind: str) -> Any:
    return strawberry.field(default=UNSET, description=f"{kind}")


@strawberry.input(description="Conditions on a text field (case-sensitive).")
class StringOperationFilterInput:
    """eq neq in nin contains startsWith endsWith."""

    eq: str | None = _op("Equal to (null: is null).")
    neq: str | None = _op("Not equal to (null: is not null).")
    in_: list[str | None] | None = strawberry.field(name="in", default=UNSET)
    nin: list[str | None] | None = _op("None of the values.")
    contains: str | None = _op("Contains the text.")
    startsWith: str | None = _op("Starts with the text.")
    endsWith: str | None = _op("Ends with the text.")


@strawberry.input(description="Conditions on an integer field.")
class IntOperationFilterInput:
    """eq neq in nin gt gte lt lte."""

    eq: int | None = _op("Equal to (null: is null).")
    neq: int | None = _op("Not equal to (null: is not null).")
    in_: list[int | None] | None = strawberry.field(name="in", default=UNSET)
    nin: list[int | None] | None = _op("None of the values.")
    gt: int | None = _op("Greater than.")
    gte: int | None = _op("Greater than or equal to.")
    lt: int | None = _op("Less than.")
    lte: int | None = _op("Less than or equal to.")


@strawberry.input(description="Conditions on a 64-bit integer field.")
class LongOperationFilterInput:
    """eq neq in nin gt gte lt lte."""

    eq: Long | None = _op("Equal to (null: is null).")
    neq: Long | None = _op("Not equal to (null: is not null).")
    in_: list[Long | None] | None = strawberry.field(name="in", default=UNSET)
    nin: list[Long | None] | None = _op("None of the values.")
    gt: Long | None = _op("Greater than.")
    gte: Long | None = _op("Greater than or equal to.")
    lt: Long | None = _op("Less than.")
    lte: Long | None = _op("Less than or equal to.")


@strawberry.input(description="Conditions on a decimal field.")
class FloatOperationFilterInput:
    """eq neq in nin gt gte lt lte."""

    eq: float | None = _op("Equal to (null: is null).")
    neq: float | None = _op("Not equal to (null: is not null).")
    in_: list[float | None] | None = strawberry.field(name="in", default=UNSET)
    nin: list[float | None] | None = _op("None of the values.")
    gt: float | None = _op("Greater than.")
    gte: float | None = _op("Greater than or equal to.")
    lt: float | None = _op("Less than.")
    lte: float | None = _op("Less than or equal to.")


@strawberry.input(description="Conditions on an ISO 8601 date-time field.")
class DateTimeOperationFilterInput:
    """eq neq in nin gt gte lt lte."""

    eq: DateTime | None = _op("Equal to (null: is null).")
    neq: DateTime | None = _op("Not equal to (null: is not null).")
    in_: list[DateTime | None] | None = strawberry.field(name="in", default=UNSET)
    nin: list[DateTime | None] | None = _op("None of the values.")
    gt: DateTime | None = _op("Later than.")
    gte: DateTime | None = _op("Later than or equal to.")
    lt: DateTime | None = _op("Earlier than.")
    lte: DateTime | None = _op("Earlier than or equal to.")


@strawberry.input(description="Conditions on an ISO 8601 date field.")
class DateOperationFilterInput:
    """eq neq in nin gt gte lt lte."""

    eq: Date | None = _op("Equal to (null: is null).")
    neq: Date | None = _op("Not equal to (null: is not null).")
    in_: list[Date | None] | None = strawberry.field(name="in", default=UNSET)
    nin: list[Date | None] | None = _op("None of the values.")
    gt: Date | None = _op("Later than.")
    gte: Date | None = _op("Later than or equal to.")
    lt: Date | None = _op("Earlier than.")
    lte: Date | None = _op("Earlier than or equal to.")


@strawberry.input(description="Conditions on a boolean field.")
class BooleanOperationFilterInput:
    """eq neq."""

    eq: bool | None = _op("Equal to (null: is null).")
    neq: bool | None = _op("Not equal to (null: is not null).")


OPERATION_INPUTS: dict[ScalarType, type] = {
    ScalarType.STRING: StringOperationFilterInput,
    ScalarType.INT: IntOperationFilterInput,
    ScalarType.LONG: LongOperationFilterInput,
    ScalarType.FLOAT: FloatOperationFilterInput,
    ScalarType.BOOLEAN: BooleanOperationFilterInput,
    ScalarType.DATETIME: DateTimeOperationFilterInput,
    ScalarType.DATE: DateOperationFilterInput,
}

# Python attribute -> filter operator
OPERATOR_ATTRIBUTES: dict[str, str] = {
    "eq": "eq",
    "neq": "neq",
    "in_": "in",
    "nin": "nin",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "contains": "contains",
    "startsWith": "startsWith",
    "endsWith": "endsWith",
}

_PYTHON_TYPES: dict[ScalarType, Any] = {
    ScalarType.STRING: str,
    ScalarType.INT: int,
    ScalarType.LONG: Long,
    ScalarType.FLOAT: float,
    ScalarType.BOOLEAN: bool,
    ScalarType.DATETIME: DateTime,
    ScalarType.DATE: Date,
}


def python_type(kind: ScalarType) -> Any:
    """The annotation strawberry maps to the GraphQL scalar for ``kind``."""
    return _PYTHON_TYPES[kind]
