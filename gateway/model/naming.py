"""Turning source names into GraphQL names: transliterated, valid, unique per type.

A type and root field is ``{REG}_{Entity}`` (:func:`type_name`); a field keeps its source name
where GraphQL allows it (:func:`graphql_name`), and clashes get a numbered suffix
(:func:`unique_names`).
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["graphql_name", "type_name", "unique_names"]

_SPECIAL = str.maketrans(
    {"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa",
     "ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)  # fmt: skip
_INVALID = re.compile(r"[^A-Za-z0-9_]")


@functools.lru_cache(maxsize=8192)
def graphql_name(source: str) -> str:
    """Transliterate a source name to a valid GraphQL name.

    ``æ→ae ø→oe å→aa ä→ae ö→oe ü→ue ß→ss``, other diacritics stripped, any other invalid
    character becomes ``_`` and a leading digit gets a ``_`` prefix.
    """
    text = source.translate(_SPECIAL)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _INVALID.sub("_", text)
    if not text or text[0].isdigit():
        text = "_" + text
    if text.startswith("__"):
        # Names starting with "__" are reserved for introspection.
        text = "x" + text[1:]
    return text


@functools.lru_cache(maxsize=4096)
def type_name(register: str, entity: str) -> str:
    """The GraphQL type and root-field name ``{REG}_{Entity}``."""
    return f"{register}_{graphql_name(entity)}"


def unique_names(sources: list[str], taken: set[str] | None = None) -> list[str]:
    """Transliterate each name; collisions get a numeric suffix (``navn``, ``navn_2``)."""
    used = set(taken or ())
    out: list[str] = []
    for source in sources:
        base = graphql_name(source)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        out.append(name)
    return out
