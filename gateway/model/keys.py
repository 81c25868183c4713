"""Row keys: composite keys joined into one string, the field that holds them, and the key as
the tie-breaker of every order.

Used by every kind whose upstream has no single-column key (the XSD loader names the field,
the adapters build and split the values).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.model.datamodel import Entity
from gateway.model.query import SortKey

__all__ = ["KEY_SEPARATOR", "join_key", "key_order", "reference_source", "split_key"]

KEY_SEPARATOR = "|"


def reference_source(entity: str) -> str:
    """The source name of the generated field holding an entity's composite key."""
    return f"{entity}_ID"


def join_key(values: Iterable[Any]) -> str:
    """Join key values into one string (``None`` as empty; ``|`` and ``\\`` escaped)."""
    parts = ("" if v is None else str(v) for v in values)
    return KEY_SEPARATOR.join(p.replace("\\", "\\\\").replace("|", "\\|") for p in parts)


def split_key(text: str) -> list[str]:
    """The parts of a key joined by :func:`join_key`."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == KEY_SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def key_order(entity: Entity, order: Sequence[SortKey]) -> tuple[SortKey, ...]:
    """``order`` completed by the entity's key fields it does not name (ascending), so that
    every order is total and paging never skips or repeats a row."""
    named = {k.field for k in order}
    return (*order, *(SortKey(name) for name in entity.key if name not in named))
