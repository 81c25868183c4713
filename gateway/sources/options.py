"""Typed ``Source.json`` options: each declared once, with its spelling, type and default.

A kind declares its options as an :class:`OptionSet` of :class:`Option` (the ``Source.json``
name in camelCase, the JSON type, the default, and any older spelling still accepted) and
builds its frozen options dataclass from :meth:`OptionSet.values`. The same declaration gives
``gateway validate`` its checks (:meth:`OptionSet.problems`, one line per problem, naming the
option) and its warnings (:meth:`OptionSet.deprecated`).

An older spelling (an *alias*) means the same as the name. When a mapping holds both, the one
that comes later wins, as when ``{**source_json, **overrides}`` merges a register's
``Source.json`` with the gateway configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "OptionSet", "old_spellings", "respelled"]

# The JSON types an option may have; "number" takes integers too, and no type takes a boolean
# unless it is "boolean".
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict, Mapping),
}


@dataclass(frozen=True, slots=True)
class Option:
    """One ``Source.json`` option."""

    name: str
    type: str | tuple[str, ...]
    default: Any = None
    minimum: float | None = None
    positive: bool = False  # greater than zero
    nullable: bool = False  # null is a value of its own (not "use the default")
    required: bool = False
    aliases: tuple[str, ...] = ()
    items: str | None = None  # the JSON type of an array's items
    check: Callable[[Any], str | None] | None = None  # a further problem with the value
    description: str = ""

    @property
    def types(self) -> tuple[str, ...]:
        return (self.type,) if isinstance(self.type, str) else self.type

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this option (None: nothing)."""
        if value is None:
            return None if self.nullable or not self.required else "must not be null"
        if not any(_is(value, t) for t in self.types):
            return f"must be {' or '.join(_article(t) for t in self.types)}, not {_json(value)}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.positive and value <= 0:
                return f"must be greater than 0, not {value}"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}, not {value}"
        if self.items is not None and isinstance(value, list | tuple):
            wrong = [v for v in value if not _is(v, self.items)]
            if wrong:
                return f"must list {self.items} values, not {_json(wrong[0])}"
        return self.check(value) if self.check is not None else None


def _is(value: Any, json_type: str) -> bool:
    if isinstance(value, bool):
        return json_type == "boolean"
    return isinstance(value, _TYPES[json_type])


def _article(json_type: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(
        json_type, f"a {json_type}"
    )


def _json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return str(value)


class OptionSet:
    """The options of one kind."""

    def __init__(self, kind: str, options: Iterable[Option]) -> None:
        self.kind = kind
        self.options = {o.name: o for o in options}
        self._spelling = {a: o.name for o in self.options.values() for a in (o.name, *o.aliases)}

    def canonical(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` with every older spelling replaced by the name (the later key wins)."""
        return respelled(given, self._spelling)

    def values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared option's value (its default where absent), by name."""
        found = self.canonical(given)
        return {
            name: found[name]
            if name in found and (o.nullable or found[name] is not None)
            # A default that is a list or a dict is copied, never shared.
            else _copy(o.default)
            for name, o in self.options.items()
        }

    def problems(self, given: Mapping[str, Any]) -> list[str]:
        """What is wrong with the declared options in ``given``: one line each, naming it."""
        found = self.canonical(given)
        out: list[str] = []
        for name, option in self.options.items():
            if name not in found:
                if option.required:
                    out.append(f"option {name!r} is required ({self.kind})")
                continue
            problem = option.problem(found[name])
            if problem is not None:
                out.append(f"option {name!r} {problem}")
        return out

    def deprecated(self, given: Mapping[str, Any]) -> list[str]:
        """The older spellings used in ``given``, one line each with the name to write."""
        aliases = {old: name for old, name in self._spelling.items() if old != name}
        return old_spellings(given, aliases)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def respelled(given: Mapping[str, Any], spellings: Mapping[str, str]) -> dict[str, Any]:
    """``given`` (a block of options) with each older spelling, a key of ``spellings``,
    replaced by its name; of both, the later key wins."""
    out: dict[str, Any] = {}
    for key, value in given.items():
        name = spellings.get(key, key)
        out.pop(name, None)
        out[name] = value
    return out


def old_spellings(
    given: Mapping[str, Any], spellings: Mapping[str, str], where: str = ""
) -> list[str]:
    """The older spellings used in ``given``, one line each with the name to write; ``where``
    names the block they are in (e.g. ``datamodel``), none for the top level."""
    at = f"{where}." if where else ""
    return [
        f"option '{at}{key}' is an old spelling: write '{at}{spellings[key]}'"
        for key in given
        if key in spellings
    ]
