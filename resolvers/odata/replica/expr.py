"""OData v3 ``$filter`` and ``$orderby`` expressions: tokenizer, parser and evaluator.

The grammar is the subset of OData v3 (MS-ODATA ABNF) that clients of oda.ft.dk use:

* operators, loosest first: ``or``, ``and``, ``eq ne``, ``gt ge lt le``, ``not``;
* parentheses;
* literals: integers (``-5``), strings (``'it''s'``), ``datetime'2014-09-09T09:05:59.653'``
  (keyword in any case), ``true``, ``false``, ``null``;
* property names of the entity set (percent-decoded UTF-8, e.g. ``aktørid``);
* functions ``substringof``, ``startswith``, ``endswith``, ``tolower``, ``toupper``, ``trim``,
  ``length``, ``indexof``, ``year``, ``month``, ``day``, ``hour``, ``minute``, ``second``.

Expressions are type-checked against the entity set's ``$metadata`` types before they run, and
compiled to Python closures (never ``eval``). Null follows OData: ``eq``/``ne`` treat null as a
value, ordering comparisons with null are false, a function of null is null, and ``and``/``or``/
``not`` use three-valued logic. A row matches when the whole expression is ``true``.

Every problem (bad syntax, unknown property, type mismatch, too long, too deep) raises
:class:`ExpressionError`, which the replica answers with ``400``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "ExpressionError",
    "JsonValue",
    "OrderKey",
    "Predicate",
    "Row",
    "compile_filter",
    "data_datetime",
    "kind_of",
    "parse_datetime",
    "parse_orderby",
    "sort_rows",
]

MAX_LENGTH: Final = 8000
"""Longest accepted ``$filter``/``$orderby`` text, in characters."""

MAX_DEPTH: Final = 64
"""Deepest accepted nesting of parentheses, ``not`` and function arguments."""

JsonValue: TypeAlias = int | str | bool | None
Row: TypeAlias = Mapping[str, JsonValue]
Value: TypeAlias = int | str | bool | dt.datetime | None
Kind: TypeAlias = Literal["int", "str", "bool", "datetime", "null"]
Predicate: TypeAlias = Callable[[Row], bool]
_Eval: TypeAlias = Callable[[Row], Value]

_EDM_KINDS: Final[Mapping[str, Kind]] = {
    "Edm.Int16": "int",
    "Edm.Int32": "int",
    "Edm.Int64": "int",
    "Edm.Byte": "int",
    "Edm.SByte": "int",
    "Edm.Boolean": "bool",
    "Edm.DateTime": "datetime",
    "Edm.String": "str",
}
_DATETIME: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?", re.ASCII
)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_DIGITS: Final = frozenset("0123456789")
_SPACE: Final = frozenset(" \t\r\n")
_EQUALITY: Final = frozenset({"eq", "ne"})
_RELATIONAL: Final = frozenset({"gt", "ge", "lt", "le"})
_ORDERED_KINDS: Final = frozenset({"int", "str", "datetime"})


class ExpressionError(ValueError):
    """A ``$filter`` or ``$orderby`` that is not valid OData v3 for the entity set."""


def kind_of(edm_type: str) -> Kind:
    """The comparison kind of an ``Edm.*`` property type (unknown types compare as text)."""
    return _EDM_KINDS.get(edm_type, "str")


# --- date-times -------------------------------------------------------------------------------


def parse_datetime(text: str) -> dt.datetime:
    """Parse an ``Edm.DateTime`` text ``YYYY-MM-DD[THH:MM[:SS[.fffffff]]]`` (no offset).

    Raises:
        ExpressionError: the text is not such a date-time.
    """
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ExpressionError(f"bad date-time {text!r}")
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "")[:6].ljust(6, "0")),  # .NET has 7 digits, Python 6
        )
    except ValueError as exc:
        raise ExpressionError(f"no such date-time {text!r}") from exc


@functools.lru_cache(maxsize=1 << 16)
def data_datetime(text: str) -> dt.datetime:
    """:func:`parse_datetime` for values from the data, cached: bulk loads share timestamps."""
    return parse_datetime(text)


# --- tokens -----------------------------------------------------------------------------------

TokenKind: TypeAlias = Literal["name", "string", "int", "datetime", "(", ")", ",", "end"]
_PUNCTUATION: Final[Mapping[str, TokenKind]] = {"(": "(", ")": ")", ",": ","}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str
    pos: int
    value: Value = None


def _tokenize(text: str) -> list[_Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char in _SPACE:
            pos += 1
        elif char in _PUNCTUATION:
            tokens.append(_Token(_PUNCTUATION[char], char, pos))
            pos += 1
        elif char == "'":
            value, end = _read_string(text, pos)
            tokens.append(_Token("string", text[pos:end], pos, value))
            pos = end
        elif char in _DIGITS or (char == "-" and text[pos + 1 : pos + 2] in _DIGITS):
            token = _read_int(text, pos)
            tokens.append(token)
            pos += len(token.text)
        elif char.isalpha() or char == "_":
            token = _read_name(text, pos)
            tokens.append(token)
            pos += len(token.text)
        else:
            raise ExpressionError(f"unexpected character {char!r} at {pos}")
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted string at ``start`` and the index after its closing quote."""
    pieces: list[str] = []
    pos = start + 1
    while True:
        end = text.find("'", pos)
        if end < 0:
            raise ExpressionError(f"unterminated string at {start}")
        pieces.append(text[pos:end])
        if text.startswith("''", end):
            pieces.append("'")  # a doubled quote is one quote character
            pos = end + 2
        else:
            return "".join(pieces), end + 1


def _read_int(text: str, start: int) -> _Token:
    end = start + 1
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    if end < len(text) and (text[end].isalnum() or text[end] in "._"):
        # Decimal, double and long literals (1.5, 1e3, 5L) have no use on this service.
        raise ExpressionError(f"unsupported number literal at {start}")
    literal = text[start:end]
    if len(literal) > 20:
        raise ExpressionError(f"integer literal out of range at {start}")
    value = int(literal)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ExpressionError(f"integer literal out of range at {start}")
    return _Token("int", literal, start, value)


def _read_name(text: str, start: int) -> _Token:
    end = start + 1
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    name = text[start:end]
    if not text.startswith("'", end):
        return _Token("name", name, start)
    if name.lower() != "datetime":
        raise ExpressionError(f"unsupported literal type {name!r} at {start}")
    content, after = _read_string(text, end)
    return _Token("datetime", text[start:after], start, parse_datetime(content))


# --- syntax tree ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Value
    kind: Kind


@dataclass(frozen=True, slots=True)
class _Property:
    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class _Call:
    function: str
    args: tuple[_Node, ...]
    kind: Kind


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node
    kind: Kind = "bool"


@dataclass(frozen=True, slots=True)
class _Logical:
    operator: Literal["and", "or"]
    items: tuple[_Node, ...]
    kind: Kind = "bool"


@dataclass(frozen=True, slots=True)
class _Compare:
    operator: str
    left: _Node
    right: _Node
    kind: Kind = "bool"


_Node: TypeAlias = _Literal | _Property | _Call | _Not | _Logical | _Compare


@dataclass(frozen=True, slots=True)
class _Function:
    params: tuple[Kind, ...]
    result: Kind
    impl: Callable[..., Value]


_FUNCTIONS: Final[Mapping[str, _Function]] = {
    "substringof": _Function(("str", "str"), "bool", lambda needle, hay: needle in hay),
    "startswith": _Function(("str", "str"), "bool", str.startswith),
    "endswith": _Function(("str", "str"), "bool", str.endswith),
    "tolower": _Function(("str",), "str", str.lower),
    "toupper": _Function(("str",), "str", str.upper),
    "trim": _Function(("str",), "str", str.strip),
    "length": _Function(("str",), "int", len),
    "indexof": _Function(("str", "str"), "int", str.find),
    "year": _Function(("datetime",), "int", lambda d: d.year),
    "month": _Function(("datetime",), "int", lambda d: d.month),
    "day": _Function(("datetime",), "int", lambda d: d.day),
    "hour": _Function(("datetime",), "int", lambda d: d.hour),
    "minute": _Function(("datetime",), "int", lambda d: d.minute),
    "second": _Function(("datetime",), "int", lambda d: d.second),
}
_KEYWORD_LITERALS: Final[Mapping[str, _Literal]] = {
    "true": _Literal(True, "bool"),
    "false": _Literal(False, "bool"),
    "null": _Literal(None, "null"),
}


class _Parser:
    """Recursive descent over the tokens, one method per precedence level."""

    def __init__(self, text: str, properties: Mapping[str, Kind]) -> None:
        self._tokens = _tokenize(text)
        self._index = 0
        self._depth = 0
        self._properties = properties

    def parse(self) -> _Node:
        node = self._or()
        self._expect("end")
        return node

    # precedence levels, loosest first

    def _or(self) -> _Node:
        self._enter()
        items = [self._and()]
        while self._accept_name("or"):
            items.append(self._and())
        self._depth -= 1
        return _logical("or", items)

    def _and(self) -> _Node:
        items = [self._equality()]
        while self._accept_name("and"):
            items.append(self._equality())
        return _logical("and", items)

    def _equality(self) -> _Node:
        node = self._relational()
        while self._peek_name() in _EQUALITY:
            operator = self._next().text
            node = _compare(operator, node, self._relational())
        return node

    def _relational(self) -> _Node:
        node = self._unary()
        while self._peek_name() in _RELATIONAL:
            operator = self._next().text
            node = _compare(operator, node, self._unary())
        return node

    def _unary(self) -> _Node:
        if not self._accept_name("not"):
            return self._primary()
        self._enter()
        operand = self._unary()
        self._depth -= 1
        _require_bool(operand, "not")
        return _Not(operand)

    def _primary(self) -> _Node:
        token = self._next()
        if token.kind == "(":
            node = self._or()
            self._expect(")")
            return node
        if token.kind == "string":
            return _Literal(token.value, "str")
        if token.kind == "int":
            return _Literal(token.value, "int")
        if token.kind == "datetime":
            return _Literal(token.value, "datetime")
        if token.kind == "name":
            return self._name(token)
        raise ExpressionError(f"unexpected {token.text or 'end'!r} at {token.pos}")

    def _name(self, token: _Token) -> _Node:
        if self._tokens[self._index].kind == "(":
            return self._call(token)
        if token.text in _KEYWORD_LITERALS:
            return _KEYWORD_LITERALS[token.text]
        kind = self._properties.get(token.text)
        if kind is None:
            raise ExpressionError(f"unknown property {token.text!r} at {token.pos}")
        return _Property(token.text, kind)

    def _call(self, token: _Token) -> _Node:
        function = _FUNCTIONS.get(token.text)
        if function is None:
            raise ExpressionError(f"unknown function {token.text!r} at {token.pos}")
        self._expect("(")
        args = [self._or()]
        while self._tokens[self._index].kind == ",":
            self._index += 1
            args.append(self._or())
        self._expect(")")
        if len(args) != len(function.params):
            raise ExpressionError(f"{token.text} takes {len(function.params)} arguments")
        for arg, param in zip(args, function.params, strict=True):
            if arg.kind not in (param, "null"):
                raise ExpressionError(f"{token.text} wants {param}, got {arg.kind}")
        return _Call(token.text, tuple(args), function.result)

    # token helpers

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}")

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _peek_name(self) -> str | None:
        token = self._tokens[self._index]
        return token.text if token.kind == "name" else None

    def _accept_name(self, name: str) -> bool:
        if self._peek_name() == name:
            self._index += 1
            return True
        return False

    def _expect(self, kind: TokenKind) -> None:
        token = self._next()
        if token.kind != kind:
            raise ExpressionError(f"expected {kind!r} at {token.pos}, got {token.text!r}")


def _logical(operator: Literal["and", "or"], items: list[_Node]) -> _Node:
    if len(items) == 1:
        return items[0]
    for item in items:
        _require_bool(item, operator)
    # Flattened, so that long chains (`id eq 1 or id eq 2 or …`) never recurse deeply.
    flat: list[_Node] = []
    for item in items:
        if isinstance(item, _Logical) and item.operator == operator:
            flat.extend(item.items)
        else:
            flat.append(item)
    return _Logical(operator, tuple(flat))


def _compare(operator: str, left: _Node, right: _Node) -> _Node:
    kinds = {left.kind, right.kind} - {"null"}
    if len(kinds) > 1:
        raise ExpressionError(f"cannot compare {left.kind} with {right.kind}")
    if operator in _RELATIONAL and not kinds <= _ORDERED_KINDS:
        raise ExpressionError(f"{operator} does not apply to {left.kind}")
    return _Compare(operator, left, right)


def _require_bool(node: _Node, operator: str) -> None:
    if node.kind not in ("bool", "null"):
        raise ExpressionError(f"{operator} needs a boolean operand, got {node.kind}")


# --- evaluation -------------------------------------------------------------------------------


def _evaluator(node: _Node) -> _Eval:
    if isinstance(node, _Literal):
        value = node.value
        return lambda row: value
    if isinstance(node, _Property):
        return _property_reader(node)
    if isinstance(node, _Call):
        return _call_evaluator(node)
    if isinstance(node, _Not):
        operand = _evaluator(node.operand)
        return lambda row: None if (v := operand(row)) is None else not v
    if isinstance(node, _Logical):
        return _logical_evaluator(node)
    return _compare_evaluator(node)


def _property_reader(node: _Property) -> _Eval:
    name = node.name
    if node.kind == "datetime":
        return lambda row: None if (v := row[name]) is None else data_datetime(str(v))
    return lambda row: row[name]


def _call_evaluator(node: _Call) -> _Eval:
    impl = _FUNCTIONS[node.function].impl
    args = [_evaluator(arg) for arg in node.args]

    def call(row: Row) -> Value:
        values = [arg(row) for arg in args]
        return None if None in values else impl(*values)

    return call


def _logical_evaluator(node: _Logical) -> _Eval:
    fast = _membership(node)
    if fast is not None:
        return fast
    items = [_evaluator(item) for item in node.items]
    decisive = node.operator == "or"  # the value that settles the result at once

    def logical(row: Row) -> Value:
        unknown = False
        for item in items:
            value = item(row)
            if value is None:
                unknown = True
            elif value is decisive:
                return decisive
        return None if unknown else not decisive

    return logical


def _membership(node: _Logical) -> _Eval | None:
    """``p eq a or p eq b or …`` on one non-date property as a set lookup, or None."""
    if node.operator != "or":
        return None
    name: str | None = None
    values: set[Value] = set()
    for item in node.items:
        if not isinstance(item, _Compare) or item.operator != "eq":
            return None
        prop, literal = item.left, item.right
        if isinstance(prop, _Literal):
            prop, literal = literal, prop
        if not isinstance(prop, _Property) or not isinstance(literal, _Literal):
            return None
        if prop.kind == "datetime" or literal.value is None or name not in (None, prop.name):
            return None
        name = prop.name
        values.add(literal.value)
    assert name is not None  # an `or` has at least two items
    key = name
    return lambda row: row[key] in values


def _compare_evaluator(node: _Compare) -> _Eval:
    left, right = _evaluator(node.left), _evaluator(node.right)
    operator = node.operator
    if operator == "eq":
        # Python's None == x already gives OData's null semantics for equality.
        return lambda row: left(row) == right(row)
    if operator == "ne":
        return lambda row: left(row) != right(row)
    test = _ORDERINGS[operator]

    def ordered(row: Row) -> Value:
        a, b = left(row), right(row)
        return False if a is None or b is None else test(a, b)

    return ordered


_ORDERINGS: Final[Mapping[str, Callable[[Value, Value], bool]]] = {
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
}


def compile_filter(text: str, properties: Mapping[str, Kind]) -> Predicate:
    """Compile a ``$filter`` over an entity set with ``properties`` (name → kind).

    Raises:
        ExpressionError: the text is not a valid boolean expression over these properties.
    """
    node = _Parser(text, properties).parse()
    _require_bool(node, "$filter")
    evaluate = _evaluator(node)
    return lambda row: evaluate(row) is True


# --- $orderby ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``$orderby`` item."""

    name: str
    kind: Kind
    descending: bool = False


def parse_orderby(text: str, properties: Mapping[str, Kind]) -> list[OrderKey]:
    """Parse ``$orderby=prop [asc|desc], …``.

    Raises:
        ExpressionError: empty item, unknown property or anything but ``asc``/``desc`` after it.
    """
    tokens = _tokenize(text)
    keys: list[OrderKey] = []
    index = 0
    while True:
        token = tokens[index]
        if token.kind != "name" or token.text not in properties:
            raise ExpressionError(f"expected a property at {token.pos}, got {token.text!r}")
        index += 1
        descending = False
        if tokens[index].kind == "name" and tokens[index].text in ("asc", "desc"):
            descending = tokens[index].text == "desc"
            index += 1
        keys.append(OrderKey(token.text, properties[token.text], descending))
        if tokens[index].kind == "end":
            return keys
        if tokens[index].kind != ",":
            raise ExpressionError(f"expected ',' at {tokens[index].pos}")
        index += 1


def sort_rows(rows: Sequence[Row], keys: Sequence[OrderKey]) -> list[Row]:
    """Rows ordered by ``keys`` (nulls first ascending, last descending), then by their order.

    Callers pass rows in ascending ``id`` order, so ``id`` is the final tiebreak.
    """
    result = list(rows)
    # Stable sorts from the least significant key to the most significant one.
    for key in reversed(keys):
        result.sort(key=_sort_key(key), reverse=key.descending)
    return result


def _sort_key(key: OrderKey) -> Callable[[Row], tuple[Value, ...]]:
    # (0,) sorts before every (1, value) and never compares a null with a value.
    name = key.name
    if key.kind == "datetime":
        return lambda row: (0,) if (v := row[name]) is None else (1, data_datetime(str(v)))
    return lambda row: (0,) if (v := row[name]) is None else (1, v)
