"""Query limits, checked before any upstream request: size, tokens, depth, aliases,
expanded fields, estimated cost.

Each refusal is a ``QUERY_TOO_COMPLEX`` error naming the limit and the measured value.
The measurement is linear in the document: every fragment is summarised once and reused
wherever it is spread. The cost estimate counts the fields a query would resolve; a
connection multiplies what is below its ``nodes``/``edges`` by the rows it is expected to
yield — a pinned key bounds it, otherwise what :mod:`gateway.graphql.demand` has observed, and the
page size only for root fields (see docs/cost.md). The real cost is metered while executing.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TokenKind,
    VariableNode,
    get_named_type,
)
from graphql.error import GraphQLSyntaxError
from graphql.language import Lexer, Source
from graphql.utilities import value_from_ast_untyped

from gateway.graphql.demand import HINT, cost_error

__all__ = [
    "LimitSettings",
    "QueryMeasure",
    "count_tokens",
    "measure",
    "verdict",
]


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The limits; the cost budget is per caller level."""

    max_document_bytes: int = 100_000
    max_tokens: int = 5_000
    max_depth: int = 15
    max_aliases: int = 30
    # Fields of the document once every fragment is expanded (what one row of each level
    # would resolve): a small document can expand to millions.
    max_fields: int = 2_000
    # Values in the request's variables (list items and object fields, counted through
    # nesting): coercing and planning 100,000 ids costs the event loop ~1 ms per 1,000.
    max_variable_values: int = 10_000
    # Entity representations one federation ``_entities`` call may name.
    max_representations: int = 1_000
    cost_budget: Mapping[int, int] = field(
        default_factory=lambda: {0: 50_000, 1: 100_000, 2: 200_000, 3: 500_000}
    )
    # Upstream requests one query may cause (``in`` chunks, relation chunks, pages).
    upstream_requests: Mapping[int, int] = field(
        default_factory=lambda: {0: 256, 1: 512, 2: 1024, 3: 2048}
    )
    default_first: int = 100

    def budget(self, level: int) -> int:
        return self.cost_budget.get(level, max(self.cost_budget.values()))

    def upstream_budget(self, level: int) -> int:
        return self.upstream_requests.get(level, max(self.upstream_requests.values()))


def too_complex(message: str, limit: str, allowed: int, measured: int) -> GraphQLError:
    """The error for a refused query."""
    return GraphQLError(
        message,
        extensions={
            "code": "QUERY_TOO_COMPLEX",
            "limit": limit,
            "allowed": allowed,
            "measured": measured,
        },
    )


def count_tokens(text: str, stop_after: int) -> int:
    """Lexical tokens of a document (stops counting past ``stop_after``).

    Remembered for short documents (bounded): clients send the same ones again and again.
    """
    if len(text) <= _MEMO_CHARS:
        return _count_tokens_memo(text, stop_after)
    return _count_tokens(text, stop_after)


_MEMO_CHARS = 8192


@lru_cache(maxsize=1024)
def _count_tokens_memo(text: str, stop_after: int) -> int:
    return _count_tokens(text, stop_after)


def _count_tokens(text: str, stop_after: int) -> int:
    lexer = Lexer(Source(text))
    count = 0
    try:
        while lexer.advance().kind != TokenKind.EOF:
            count += 1
            if count > stop_after:
                break
    except GraphQLSyntaxError:
        pass  # the parser reports syntax errors with their position
    return count


def check_variables(variables: Any, settings: LimitSettings) -> GraphQLError | None:
    """The variables' size, counted without recursion and stopping past the limit."""
    limit = settings.max_variable_values
    count = 0
    stack = [variables]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            count += len(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            count += len(value)
            stack.extend(value)
        if count > limit:
            return too_complex(
                f"the variables hold more than {limit} values; send fewer ids per query "
                "(page through them) or use the file exports for whole tables",
                "variableValues",
                limit,
                count,
            )
    return None


def check_document(text: str, settings: LimitSettings) -> GraphQLError | None:
    """Size and token limits, before the document is parsed."""
    size = len(text.encode("utf-8"))
    if size > settings.max_document_bytes:
        return too_complex(
            f"the document has {size} bytes; at most {settings.max_document_bytes} are accepted",
            "documentBytes",
            settings.max_document_bytes,
            size,
        )
    tokens = count_tokens(text, settings.max_tokens)
    if tokens > settings.max_tokens:
        return too_complex(
            f"the document has more than {settings.max_tokens} tokens",
            "tokens",
            settings.max_tokens,
            tokens,
        )
    return None


@dataclass(slots=True)
class QueryMeasure:
    """Depth, alias count, expanded field count and estimated cost of one operation.

    ``by_field`` is the estimated cost below each connection field (``Type.field``), so a
    refusal can name the one that drives the cost.
    """

    depth: int = 0
    aliases: int = 0
    cost: int = 0
    fields: int = 0
    by_field: dict[str, int] = field(default_factory=dict)
    steps: int = 0  # selections visited by the measurement (linear in the document)
    nesting_exceeded: bool = False  # selections and fragments nest past the walk's cap
    representations: int = 0  # the most entity representations of one ``_entities``

    def costliest(self) -> str | None:
        """The innermost connection carrying at least half of the heaviest one's cost."""
        if not self.by_field:
            return None
        top = max(self.by_field.values())
        heavy = [(cost, name) for name, cost in self.by_field.items() if cost * 2 >= top]
        return min(heavy)[1]


@dataclass(slots=True)
class _Summary:
    """A selection set measured once at multiplier 1 (fragments are summarised once each)."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0
    cost: int = 0
    by_field: dict[str, int] = field(default_factory=dict)

    def add(self, other: _Summary, times: int = 1, deeper: int = 0) -> None:
        self.depth = max(self.depth, other.depth + deeper)
        self.aliases += other.aliases
        self.fields += other.fields
        self.cost += other.cost * times
        for name, cost in other.by_field.items():
            self.by_field[name] = self.by_field.get(name, 0) + cost * times


class Sizes(Protocol):
    """What the estimate may know beyond the document (see
    :class:`gateway.graphql.demand.Observed`).

    ``rows`` answers how many rows a connection field is expected to yield per parent.
    """

    def rows(
        self, parent: str, field_name: str, target: str, where: Any, page: int, root: bool
    ) -> int: ...  # pragma: no cover - a protocol


_NESTING_CAP = 64


@dataclass(frozen=True, slots=True)
class _Site:
    """A connection field (or ``_entities``) whose size the request decides."""

    node: FieldNode
    parent: GraphQLObjectType | GraphQLUnionType
    connection: str  # the connection type's name (``_entities``: ENTITIES)
    root: bool  # a field of the operation's root type

    def rows(
        self, variables: Mapping[str, Any], default_first: int, knowledge: Sizes | None
    ) -> int:
        """The rows the connection is expected to yield per parent."""
        size: int | None = None
        where: Any = None
        for argument in self.node.arguments or ():
            name = argument.name.value
            if name in ("first", "last"):
                number = _number(argument.value, variables)
                if isinstance(number, int) and not isinstance(number, bool):
                    size = number if size is None else min(size, number)
            elif name == "where":
                try:
                    where = value_from_ast_untyped(argument.value, dict(variables))
                except Exception:
                    where = None
        page = max(size if size is not None else default_first, 0)
        if knowledge is None:
            return page
        target = self.connection.removesuffix("Connection")
        known = knowledge.rows(
            self.parent.name, self.node.name.value, target, where, page, self.root
        )
        return max(0, min(page, known))

    def representations(self, variables: Mapping[str, Any]) -> dict[str, int]:
        """``_entities``: how many representations of each ``__typename`` it names."""
        counts: dict[str, int] = {}
        for argument in self.node.arguments or ():
            if argument.name.value != "representations":
                continue
            try:
                value = value_from_ast_untyped(argument.value, dict(variables))
            except Exception:
                value = None
            for item in value if isinstance(value, list) else ():
                name = item.get("__typename") if isinstance(item, dict) else None
                counts[str(name)] = counts.get(str(name), 0) + 1
        return counts

    def input(
        self, variables: Mapping[str, Any], default_first: int, knowledge: Sizes | None
    ) -> Hashable:
        """What the walk takes from the request here (as :class:`_Walker` records it)."""
        if self.connection == ENTITIES:
            return tuple(self.representations(variables).items())
        return self.rows(variables, default_first, knowledge)


def _number(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, IntValueNode):
        return int(value.value)
    if isinstance(value, VariableNode):
        return variables.get(value.name.value)
    return None


# The federation field whose list of representations multiplies what is selected below it.
ENTITIES = "_entities"


class _Walker:
    """Measures a document in time linear in its size, whatever its fragments expand to."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_first: int,
        knowledge: Sizes | None,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_first = default_first
        self.knowledge = knowledge
        self.memo: dict[str, _Summary] = {}
        self.memo_parts: dict[str, tuple[_Summary, _Summary]] = {}
        self.steps = 0
        # Nesting of the walk: past the cap the document is too deep anyway, so the walk
        # stops descending (no recursion limit however deep a chain of fragments goes).
        self.nesting = 0
        self.cap = _NESTING_CAP
        self.truncated = False
        self.active: set[str] = set()
        self.root_type: GraphQLObjectType | None = None
        self.representations = 0
        # Where the measure depends on the request (variables, what is known of sizes), in
        # the order the walk meets them, and what each gave: the rest is the document's.
        self.sites: list[_Site] = []
        self.inputs: list[Hashable] = []

    def _size(self, node: FieldNode, parent: GraphQLObjectType, connection: str) -> int:
        site = _Site(node, parent, connection, parent is self.root_type)
        size = site.rows(self.variables, self.default_first, self.knowledge)
        self.sites.append(site)
        self.inputs.append(size)
        return size

    def _fragment(self, name: str, parent: GraphQLObjectType) -> _Summary | None:
        found = self.memo.get(name)
        if found is not None:
            return found
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return None  # unknown or cyclic: validation reports it
        condition = self.schema.get_type(fragment.type_condition.name.value)
        on = condition if isinstance(condition, GraphQLObjectType) else parent
        self.active.add(name)
        try:
            summary = self.selection(fragment.selection_set, on)
        finally:
            self.active.discard(name)
        self.memo[name] = summary
        return summary

    def selection(self, selection_set: SelectionSetNode, parent: GraphQLObjectType) -> _Summary:
        """One selection set's summary; a fragment spread twice in it counts once."""
        out = _Summary()
        if self.nesting >= self.cap:
            self.truncated = True  # refused without walking on
            return out
        self.nesting += 1
        try:
            self._into(out, selection_set, parent, set())
        finally:
            self.nesting -= 1
        return out

    def _into(
        self,
        out: _Summary,
        selection_set: SelectionSetNode,
        parent: GraphQLObjectType,
        spread: set[str],
    ) -> None:
        for sel in selection_set.selections:
            self.steps += 1
            if isinstance(sel, FieldNode):
                self._field(out, sel, parent)
            elif isinstance(sel, InlineFragmentNode):
                on: Any = parent
                if sel.type_condition is not None:
                    named = self.schema.get_type(sel.type_condition.name.value)
                    on = named if isinstance(named, GraphQLObjectType) else parent
                self._into(out, sel.selection_set, on, spread)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in spread:
                    continue
                spread.add(name)
                summary = self._fragment(name, parent)
                if summary is not None:
                    out.add(summary)

    def _field(self, out: _Summary, node: FieldNode, parent: GraphQLObjectType) -> None:
        out.depth = max(out.depth, 1)
        out.fields += 1
        out.cost += 1
        if node.alias is not None:
            out.aliases += 1
        definition = parent.fields.get(node.name.value)
        if definition is None or node.selection_set is None:
            return
        child = get_named_type(definition.type)
        if isinstance(child, GraphQLUnionType) and node.name.value == ENTITIES:
            inner = self._entities(node, child)
            out.add(inner, deeper=1)
            out.by_field[f"{parent.name}.{ENTITIES}"] = inner.cost
            return
        if not isinstance(child, GraphQLObjectType):
            return
        if child.name.endswith("Connection") and {"nodes", "edges"} <= set(child.fields):
            size = self._size(node, parent, child.name)
            inner = self._connection(node.selection_set, child, size)
            out.add(inner, deeper=1)
            out.by_field[f"{parent.name}.{node.name.value}"] = (
                out.by_field.get(f"{parent.name}.{node.name.value}", 0) + inner.cost
            )
        else:
            out.add(self.selection(node.selection_set, child), deeper=1)

    def _entities(self, node: FieldNode, union: GraphQLUnionType) -> _Summary:
        """``_entities``: what is selected on each type, times its representations."""
        site = _Site(node, union, ENTITIES, False)
        counts = site.representations(self.variables)
        self.sites.append(site)
        self.inputs.append(tuple(counts.items()))
        total = sum(counts.values())
        self.representations = max(self.representations, total)
        out = _Summary()
        if self.nesting >= self.cap:
            self.truncated = True
            return out
        self.nesting += 1
        try:
            self._entity_parts(out, node.selection_set, union, counts, total, set())
        finally:
            self.nesting -= 1
        return out

    def _entity_parts(
        self,
        out: _Summary,
        selection_set: SelectionSetNode | None,
        union: GraphQLUnionType,
        counts: Mapping[str, int],
        total: int,
        spread: set[str],
    ) -> None:
        for sel in selection_set.selections if selection_set is not None else ():
            self.steps += 1
            if isinstance(sel, FieldNode):  # __typename
                out.depth = max(out.depth, 1)
                out.fields += 1
                out.cost += total
                out.aliases += sel.alias is not None
                continue
            if isinstance(sel, FragmentSpreadNode):
                if sel.name.value in spread:
                    continue
                spread.add(sel.name.value)
                fragment = self.fragments.get(sel.name.value)
                if fragment is None:
                    continue
                condition: str | None = fragment.type_condition.name.value
                inner = fragment.selection_set
            elif isinstance(sel, InlineFragmentNode):
                condition = sel.type_condition.name.value if sel.type_condition else None
                inner = sel.selection_set
            else:
                continue
            on = self.schema.get_type(condition) if condition is not None else union
            if isinstance(on, GraphQLObjectType):
                summary = (
                    self._fragment(sel.name.value, on)
                    if isinstance(sel, FragmentSpreadNode)
                    else self.selection(inner, on)
                )
                if summary is not None:
                    out.add(summary, times=counts.get(on.name, 0))
            else:  # on the union itself
                self._entity_parts(out, inner, union, counts, total, spread)

    def _connection(
        self, selection_set: SelectionSetNode, connection: GraphQLObjectType, size: int
    ) -> _Summary:
        plain, rows = _Summary(), _Summary()
        if self.nesting >= self.cap:
            self.truncated = True
            return plain
        self.nesting += 1
        try:
            self._parts(plain, rows, selection_set, connection, set())
        finally:
            self.nesting -= 1
        out = _Summary()
        out.add(plain)
        out.add(rows, times=size, deeper=1)
        return out

    def _parts(
        self,
        plain: _Summary,
        rows: _Summary,
        selection_set: SelectionSetNode,
        connection: GraphQLObjectType,
        spread: set[str],
    ) -> None:
        """A connection's selection in two parts: paid once, and paid per row."""
        for sel in selection_set.selections:
            self.steps += 1
            if isinstance(sel, FieldNode):
                definition = connection.fields.get(sel.name.value)
                child = get_named_type(definition.type) if definition is not None else None
                if (
                    sel.name.value in ("nodes", "edges")
                    and sel.selection_set is not None
                    and isinstance(child, GraphQLObjectType)
                ):
                    plain.depth = max(plain.depth, 1)
                    plain.fields += 1
                    plain.cost += 1
                    plain.aliases += sel.alias is not None
                    rows.add(self.selection(sel.selection_set, child))
                else:
                    self._field(plain, sel, connection)
            elif isinstance(sel, InlineFragmentNode):
                self._parts(plain, rows, sel.selection_set, connection, spread)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in spread:
                    continue
                spread.add(name)
                parts = self._connection_fragment(name, connection)
                if parts is not None:
                    plain.add(parts[0])
                    rows.add(parts[1])

    def _connection_fragment(
        self, name: str, connection: GraphQLObjectType
    ) -> tuple[_Summary, _Summary] | None:
        key = f"{name}\x00rows"
        found = self.memo_parts.get(key)
        if found is not None:
            return found
        fragment = self.fragments.get(name)
        if fragment is None or key in self.active:
            return None
        self.active.add(key)
        plain, rows = _Summary(), _Summary()
        try:
            self._parts(plain, rows, fragment.selection_set, connection, {name})
        finally:
            self.active.discard(key)
        self.memo_parts[key] = (plain, rows)
        return plain, rows


@dataclass(slots=True)
class _Measured:
    """One operation of one document: where its measure depends on the request, and the
    measures seen for each set of what the request gave there."""

    document: Any
    sites: tuple[_Site, ...]
    results: dict[tuple[Hashable, ...], QueryMeasure]


# Operations remembered per schema, and measures per operation (each bounded, oldest out
# first); a schema no longer used takes its operations with it.
_OPERATIONS_KEPT = 256
_RESULTS_KEPT = 64
_measured: weakref.WeakKeyDictionary[
    GraphQLSchema, dict[tuple[int, str | None, int], _Measured]
] = weakref.WeakKeyDictionary()


def measure(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    default_first: int,
    knowledge: Sizes | None = None,
) -> QueryMeasure:
    """Measure the operation that will run (linear in the document's size).

    The walk over the document is done once per operation and set of request-decided sizes
    (a connection's ``first``, ``where`` and what is known of its rows; the representations
    of ``_entities``): a document sent again with other variables costs only those.
    """
    values = variables or {}
    operations = _measured.get(schema)
    if operations is None:
        operations = _measured.setdefault(schema, {})
    key = (id(document), operation_name, default_first)
    known = operations.get(key)
    if known is not None and known.document is document:
        inputs = tuple(site.input(values, default_first, knowledge) for site in known.sites)
        found = known.results.get(inputs)
        if found is not None:
            return _copy(found)
    else:
        known = None
    result, walker = _walk(schema, document, operation_name, values, default_first, knowledge)
    if known is None:
        known = _Measured(document, tuple(walker.sites), {})
        _keep(operations, key, known, _OPERATIONS_KEPT)
    _keep(known.results, tuple(walker.inputs), result, _RESULTS_KEPT)
    return _copy(result)


def _keep(memo: dict[Any, Any], key: Any, value: Any, most: int) -> None:
    if key not in memo and len(memo) >= most:
        memo.pop(next(iter(memo)), None)
    memo[key] = value


def _copy(measured: QueryMeasure) -> QueryMeasure:
    """A remembered measure for one caller (``by_field`` is its own)."""
    return QueryMeasure(
        measured.depth,
        measured.aliases,
        measured.cost,
        measured.fields,
        dict(measured.by_field),
        measured.steps,
        measured.nesting_exceeded,
        measured.representations,
    )


def _walk(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any],
    default_first: int,
    knowledge: Sizes | None,
) -> tuple[QueryMeasure, _Walker]:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name and o.name.value == operation_name)
    ]
    walker = _Walker(schema, fragments, variables, default_first, knowledge)
    result = QueryMeasure()
    for operation in chosen[:1]:
        root = schema.get_root_type(operation.operation)
        if root is not None:
            walker.root_type = root
            summary = walker.selection(operation.selection_set, root)
            result = QueryMeasure(
                summary.depth,
                summary.aliases,
                summary.cost,
                summary.fields,
                summary.by_field,
                walker.steps,
                walker.truncated,
                walker.representations,
            )
    return result, walker


def verdict(measured: QueryMeasure, settings: LimitSettings, level: int) -> GraphQLError | None:
    if measured.depth > settings.max_depth:
        deep = f"at least {measured.depth}" if measured.nesting_exceeded else str(measured.depth)
        return too_complex(
            f"the query is {deep} levels deep; at most {settings.max_depth} are allowed",
            "depth",
            settings.max_depth,
            measured.depth,
        )
    if measured.nesting_exceeded:
        return too_complex(
            f"selections and fragment spreads nest more than {_NESTING_CAP} levels deep "
            "(a chain of fragments each spreading the next); flatten the document",
            "nesting",
            _NESTING_CAP,
            _NESTING_CAP + 1,
        )
    if measured.representations > settings.max_representations:
        return too_complex(
            f"_entities names {measured.representations} representations; at most "
            f"{settings.max_representations} are accepted per request (send them in batches)",
            "representations",
            settings.max_representations,
            measured.representations,
        )
    if measured.aliases > settings.max_aliases:
        return too_complex(
            f"the query uses {measured.aliases} aliases; at most {settings.max_aliases} allowed",
            "aliases",
            settings.max_aliases,
            measured.aliases,
        )
    if measured.fields > settings.max_fields:
        return too_complex(
            f"the query selects {measured.fields} fields once its fragments are expanded; "
            f"at most {settings.max_fields} are allowed (spread fewer fragments)",
            "fields",
            settings.max_fields,
            measured.fields,
        )
    budget = settings.budget(level)
    if measured.cost > budget:
        top = measured.costliest()
        error = cost_error(
            f"the query's estimated cost is {measured.cost} field resolutions; the budget at "
            f"level {level} is {budget}. Most of it is below {top or 'the root field'}: "
            + HINT.format(field=top or "the root field"),
            budget,
            measured.cost,
            top,
            stage="estimate",
            estimated=measured.cost,
        )
        return error
    return None
