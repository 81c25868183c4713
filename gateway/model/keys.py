"""Row keys: composite keys joined into one string, and the field that holds them.

Used by every kind whose upstream has no single-column key (the XSD loader names the field,
the adapters build and split the values).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["KEY_SEPARATOR", "join_key", "reference_source", "split_key"]

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
