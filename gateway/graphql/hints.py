"""Hints from the upstreams' own names to the GraphQL names, in parse and validation errors.

Someone who knows an upstream writes its names: ``aktørid``, ``wahl-datum``, ``Aktør``.
GraphQL names are ASCII letters, digits and ``_``, and the gateway spells each source name so
(:mod:`gateway.model.naming`): ``aktoerid``, ``wahl_datum``, ``FT_Aktoer``. A document with
such a name is a syntax error (or names a field that does not exist), and graphql-core's own
message says nothing of the spelling. :func:`with_hints` adds ``Did you mean "aktoerid"?``
to those errors, and ``extensions.didYouMean``, when the schema has the name:

- a syntax error at a character no GraphQL name may have: the word around it, spelled as the
  gateway spells source names;
- an unknown field (``Cannot query field …``, ``Field … is not defined by type …``): a field
  of that type that reads the same once spelled so, or once ``ae``/``oe``/``aa``/``ue`` and
  plain vowels are taken as one (``Aktor`` for ``Aktoer``), or the root field
  ``{REG}_{Entity}`` of an entity named without its register.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Sequence

from graphql import GraphQLError, GraphQLInputObjectType, GraphQLObjectType, GraphQLSchema

from gateway.model.naming import graphql_name

__all__ = ["with_hints"]

_UNKNOWN_FIELD = re.compile(r"^Cannot query field '(?P<field>[^']+)' on type '(?P<type>[^']+)'\.")
_UNKNOWN_INPUT = re.compile(r"^Field '(?P<field>[^']+)' is not defined by type '(?P<type>[^']+)'\.")
_LOOSE = (("ae", "a"), ("oe", "o"), ("aa", "a"), ("ue", "u"), ("ss", "s"), ("_", ""))
# Characters a name from an upstream may hold that GraphQL names may not.
_WORD_EXTRA = "-."

_NAMES: weakref.WeakKeyDictionary[GraphQLSchema, frozenset[str]] = weakref.WeakKeyDictionary()


def with_hints(errors: Sequence[GraphQLError], schema: GraphQLSchema) -> list[GraphQLError]:
    """``errors`` with a spelling hint added where one is found (others unchanged)."""
    return [_hinted(error, schema) for error in errors]


def _hinted(error: GraphQLError, schema: GraphQLSchema) -> GraphQLError:
    if error.original_error is not None:
        return error
    suggestion: str | None = None
    written: str | None = None
    if error.message.startswith("Syntax Error"):
        written = _word_at(error)
        if written is not None and written != graphql_name(written):
            candidate = graphql_name(written)
            if candidate in _names(schema):
                suggestion = candidate
    else:
        match = _UNKNOWN_FIELD.match(error.message) or _UNKNOWN_INPUT.match(error.message)
        if match is not None:
            written = match["field"]
            suggestion = _field_like(schema, match["type"], written)
    if suggestion is None or written is None or f"'{suggestion}'" in error.message:
        return error
    message = (
        f"{error.message} Did you mean '{suggestion}'? "
        f"(the upstream's name '{written}' is '{suggestion}' in GraphQL)"
    )
    extensions = {**(error.extensions or {}), "didYouMean": [suggestion]}
    return GraphQLError(
        message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        None,
        extensions,
    )


def _word_at(error: GraphQLError) -> str | None:
    """The word of the document around the error's position (letters of any script)."""
    if error.source is None or not error.positions:
        return None
    body = error.source.body
    at = next(iter(error.positions))
    if not 0 <= at < len(body):
        return None
    start = end = at
    while start > 0 and _in_word(body[start - 1]):
        start -= 1
    while end < len(body) and _in_word(body[end]):
        end += 1
    word = body[start:end].strip(_WORD_EXTRA)
    return word or None


def _in_word(char: str) -> bool:
    return char.isalnum() or char == "_" or char in _WORD_EXTRA


def _names(schema: GraphQLSchema) -> frozenset[str]:
    """Every type, field, input field and argument name of the schema (kept per schema)."""
    found = _NAMES.get(schema)
    if found is None:
        names: set[str] = set()
        for name, kind in schema.type_map.items():
            if name.startswith("__"):
                continue
            names.add(name)
            if isinstance(kind, GraphQLObjectType):
                for field_name, field in kind.fields.items():
                    names.add(field_name)
                    names.update(field.args)
            elif isinstance(kind, GraphQLInputObjectType):
                names.update(kind.fields)
        found = _NAMES[schema] = frozenset(names)
    return found


def _field_like(schema: GraphQLSchema, type_name: str, written: str) -> str | None:
    """A field of ``type_name`` that ``written`` spells another way, if exactly one does."""
    kind = schema.type_map.get(type_name)
    if not isinstance(kind, GraphQLObjectType | GraphQLInputObjectType):
        return None
    fields = list(kind.fields)
    found = _matching(written, fields)
    if not found and kind is schema.query_type:
        # An entity without its register: Aktoer → FT_Aktoer.
        found = _matching(written, fields, lambda name: name.partition("_")[2])
    return found[0] if len(found) == 1 else None


def _matching(
    written: str, names: Iterable[str], part: Callable[[str], str] = lambda name: name
) -> list[str]:
    wanted = _loose(graphql_name(written))
    return [name for name in names if name != written and _loose(part(name)) == wanted]


def _loose(name: str) -> str:
    text = name.lower()
    for long, short in _LOOSE:
        text = text.replace(long, short)
    return text
