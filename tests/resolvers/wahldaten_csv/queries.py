"""Asking an adapter the way the gateway does: Query objects."""

from __future__ import annotations

from typing import Any

from gateway.model.query import And, Condition, Page, Query
from resolvers.wahldaten_csv.adapter import WahldatenSource


async def ask(source: WahldatenSource, entity: str, *conditions: Condition, **eq: Any) -> Page:
    """Every row of ``entity`` matching the conditions and ``field == value`` for each keyword."""
    parts = [*conditions, *(Condition(name, "eq", value) for name, value in eq.items())]
    where = None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))
    return await source.fetch(Query(entity=source.register.datamodel.entities[entity], where=where))


def notices(page: Page, code: str) -> list[dict[str, Any]]:
    """The page's notices with ``code``."""
    return [n for n in page.notices if n["code"] == code]
