"""One-pass execution for plain projections.

Most of a response is fields copied from upstream rows. graphql-core resolves each of them
through a Python call, which costs far more than the copying. For a validated operation this
module compiles, once per (document, operation, caller level), a plan that shapes each page
of rows into the response directly: scalars are copied and serialised with the schema's own
scalar functions, relations are loaded once per relation and level for all rows, and the
keys come out in the order graphql-core would produce them. Each object and connection of
the plan is shaped by a Python function generated for it (:mod:`gateway.graphql.shaping`):
a row costs a few bytecodes per field, its relations looked up by its join key.

The plan covers documents made of our connection fields, scalars, relations, ``__typename``,
fragments and inline fragments. Anything else — introspection, ``@skip``/``@include``, a
denied field, a limit exceeded, an upstream error, a null in a non-null field — makes the
plan step aside, and the operation runs through strawberry as usual, so answers and errors
are those of the field-by-field path.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values

from gateway.graphql.execute import (
    Binding,
    RequestContext,
    Window,
    join_requirements,
    join_scope,
    load_related,
    node_selection,
    resolve_connection,
    window_connection,
)
from gateway.graphql.inputs import Arguments, Variables
from gateway.graphql.limits import LimitSettings
from gateway.graphql.selection import Selection
from gateway.graphql.shaping import (
    Constant,
    Cursor,
    Edges,
    Info,
    Joined,
    Nodes,
    ObjectField,
    Scalar,
    Total,
    connection_shaper,
    key_collector,
    object_shaper,
)
from gateway.history.events import is_events
from gateway.model.datamodel import Relation
from gateway.model.query import Filter, Row, SortKey
from gateway.model.validity import VALIDITY
from gateway.sources.port import REGISTRATION

__all__ = ["FastPath", "Plan", "StepAside", "compile_plan"]


class Unsupported(Exception):
    """The document is outside what a plan covers."""


class StepAside(Exception):
    """At run time: let the field-by-field path answer."""


WhereFn = Callable[[Any, Any], Filter | None]
OrderFn = Callable[[Any, Any], list[SortKey]]


@dataclass(slots=True)
class FieldPlan:
    """One response key of an object: how to produce its value."""

    key: str
    name: str
    kind: str  # scalar | typename | one | many
    nodes: list[FieldNode]
    definition: GraphQLField | None = None
    scalar: GraphQLScalarType | None = None
    non_null: bool = False
    level: int = 0
    relation: Relation | None = None
    target: Binding | None = None
    child: ObjectPlan | ConnectionPlan | None = None
    join: Join | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """What a relation's load needs, fixed by the document and the plan's caller level: the
    join's scope, the distinct join keys of parent rows, the target fields to fetch and the
    number of fields selected on them (what the meter charges per row)."""

    scope: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]
    keys: Callable[[Sequence[Row]], list[Any]]
    fetched: frozenset[str]
    selected: int


@dataclass(slots=True)
class ObjectPlan:
    """The fields of one entity type, in response order, and the function that shapes rows
    into them: ``shape(map, default, ..., rows)`` with a (map, default) per relation."""

    type_name: str
    binding: Binding
    fields: list[FieldPlan]
    joined: list[FieldPlan] = field(init=False, default_factory=list)
    shape: Callable[..., list[dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        self.joined = [f for f in self.fields if f.join is not None]
        self.shape = object_shaper([self._shaped(f) for f in self.fields], StepAside)

    def _shaped(self, f: FieldPlan) -> ObjectField:
        if f.join is not None:
            return Joined(f.key, f.join.columns)
        if f.scalar is not None:
            return Scalar(f.key, f.name, f.scalar, f.non_null)
        return Constant(f.key, self.type_name)


@dataclass(slots=True)
class ConnectionPlan:
    """The fields of a connection: nodes, edges, pageInfo, totalCount, __typename; and the
    function that shapes one: ``shape(connection, *shapers)``, a shaper of rows per object
    plan in ``objects``."""

    type_name: str
    binding: Binding
    fields: list[tuple[str, str, Any]]  # (key, name, sub-plan)
    objects: list[ObjectPlan] = field(init=False, default_factory=list)
    shape: Callable[..., dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        def nodes(key: str, plan: ObjectPlan) -> Nodes:
            self.objects.append(plan)
            return Nodes(key, len(self.objects) - 1)

        edge = f"{self.binding.entity.graphql_name}Edge"
        shaped: list[Nodes | Edges | Info | Total | Constant] = []
        for key, name, sub in self.fields:
            if name == "nodes":
                shaped.append(nodes(key, sub))
            elif name == "edges":
                parts = [
                    Cursor(k) if inner == "cursor"
                    else Constant(k, edge) if inner == "__typename"
                    else nodes(k, p)
                    for k, inner, p in sub
                ]  # fmt: skip
                shaped.append(Edges(key, tuple(parts)))
            elif name == "pageInfo":
                info = [Constant(k, "PageInfo") if n == "__typename" else (k, n) for k, n in sub]
                shaped.append(Info(key, tuple(info)))
            elif name == "totalCount":
                shaped.append(Total(key))
            else:  # __typename
                shaped.append(Constant(key, self.type_name))
        self.shape = connection_shaper(shaped, StepAside)


@dataclass(slots=True)
class RootPlan:
    key: str
    binding: Binding
    nodes: list[FieldNode]
    definition: GraphQLField
    child: ConnectionPlan
    selection: Selection


@dataclass(slots=True)
class Plan:
    """A compiled operation."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    roots: list[RootPlan]
    where: WhereFn
    order: OrderFn
    limits: LimitSettings | None
    document: DocumentNode
    operation_name: str | None
    variables: Variables
    _arguments: dict[int, Arguments] = field(default_factory=dict)

    def arguments(self, node: FieldNode) -> Arguments:
        """The kept arguments of one of the plan's field nodes."""
        found = self._arguments.get(id(node))
        if found is None:
            found = self._arguments[id(node)] = Arguments(node.arguments or ())
        return found

    async def run(self, ctx: RequestContext, raw_variables: Mapping[str, Any] | None) -> Any:
        """The response data, or :class:`StepAside`."""
        variables = self.variables.coerce(raw_variables)
        if isinstance(variables, list):
            raise StepAside  # variable errors are reported by the full path
        # The limits were checked before the plan was looked up (GatewaySchema.execute).
        run = _Run(self, ctx, variables)
        run.preflight()
        if len(self.roots) == 1:  # no task to gather: one less turn of the event loop
            (root,) = self.roots
            try:
                return {root.key: await run.root(root)}
            except Exception as exc:
                raise StepAside from exc
        values = await asyncio.gather(
            *(run.root(root) for root in self.roots), return_exceptions=True
        )
        data: dict[str, Any] = {}
        for root, value in zip(self.roots, values, strict=True):
            if isinstance(value, BaseException):
                raise StepAside from value
            data[root.key] = value
        return data


# --- compiling --------------------------------------------------------------------------


def _collect(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    out: OrderedDict[str, list[FieldNode]],
    seen: set[str] | None = None,
) -> OrderedDict[str, list[FieldNode]]:
    """Fields by response key, merged in first-appearance order (graphql-core's order).

    As in graphql-core, a fragment is collected once per selection set however often it is
    spread there, so the work is linear in the document.
    """
    if seen is None:
        seen = set()
    for selection in selection_set.selections:
        if selection.directives:
            raise Unsupported("directives")
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            out.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            _collect(selection.selection_set, fragments, out, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen:
                continue
            fragment = fragments.get(name)
            if fragment is None or fragment.directives:
                raise Unsupported("fragment")
            seen.add(name)
            _collect(fragment.selection_set, fragments, out, seen)
    return out


def _merged(
    nodes: Sequence[FieldNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> OrderedDict[str, list[FieldNode]]:
    out: OrderedDict[str, list[FieldNode]] = OrderedDict()
    seen: set[str] = set()
    for node in nodes:
        if node.selection_set is not None:
            _collect(node.selection_set, fragments, out, seen)
    return out


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        bindings: Mapping[str, Binding],
        level: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.bindings = bindings
        self.level = level

    def connection(self, type_name: str, nodes: Sequence[FieldNode]) -> ConnectionPlan:
        gtype = self.schema.get_type(type_name)
        if not isinstance(gtype, GraphQLObjectType):
            raise Unsupported(type_name)
        binding = self.bindings[type_name.removesuffix("Connection")]
        fields: list[tuple[str, str, Any]] = []
        for key, group in _merged(nodes, self.fragments).items():
            name = group[0].name.value
            if name in ("totalCount", "__typename"):
                fields.append((key, name, None))
            elif name == "nodes":
                fields.append((key, name, self.object(binding, group)))
            elif name == "pageInfo":
                info = [(k, g[0].name.value) for k, g in _merged(group, self.fragments).items()]
                fields.append((key, name, info))
            elif name == "edges":
                edge: list[tuple[str, str, Any]] = []
                for k, g in _merged(group, self.fragments).items():
                    inner = g[0].name.value
                    edge.append((k, inner, self.object(binding, g) if inner == "node" else None))
                fields.append((key, name, edge))
            else:
                raise Unsupported(name)
        return ConnectionPlan(type_name, binding, fields)

    def object(self, binding: Binding, nodes: Sequence[FieldNode]) -> ObjectPlan:
        type_name = binding.entity.graphql_name
        gtype = self.schema.get_type(type_name)
        if not isinstance(gtype, GraphQLObjectType):
            raise Unsupported(type_name)
        plans: list[FieldPlan] = []
        for key, group in _merged(nodes, self.fragments).items():
            name = group[0].name.value
            if name == "__typename":
                plans.append(FieldPlan(key, name, "typename", group))
                continue
            definition = gtype.fields.get(name)
            if definition is None:
                raise Unsupported(name)
            relation = binding.relations.get(name)
            if relation is not None:
                target = self.bindings[_target_type(relation)]
                if relation.to_many:
                    child: ObjectPlan | ConnectionPlan = self.connection(
                        get_named_type(definition.type).name, group
                    )
                else:
                    child = self.object(target, group)
                kind = "many" if relation.to_many else "one"
                plans.append(
                    FieldPlan(key, name, kind, group, definition, relation=relation,
                              target=target, child=child,
                              join=self.join(binding, relation, target, group))
                )  # fmt: skip
                continue
            scalar = get_named_type(definition.type)
            if not isinstance(scalar, GraphQLScalarType):
                raise Unsupported(name)
            if isinstance(get_nullable_type(definition.type), GraphQLList):
                raise Unsupported(f"{name} (a list field)")
            plans.append(
                FieldPlan(
                    key,
                    name,
                    "scalar",
                    group,
                    definition,
                    scalar=scalar,
                    non_null=isinstance(definition.type, GraphQLNonNull),
                    level=binding.field_level(name),
                )
            )
        return ObjectPlan(type_name, binding, plans)

    def join(
        self, binding: Binding, relation: Relation, target: Binding, nodes: Sequence[FieldNode]
    ) -> Join:
        """A relation's load, as far as the document and the caller level decide it.

        The selection below it is the same for any variables: a plan has no ``@skip`` or
        ``@include`` (collecting steps aside on every directive).
        """
        scope = join_scope(binding, relation, target)
        column = binding.entity.by_source[relation.source_field].name
        selection = Selection(nodes, self.fragments, {})
        names = node_selection(selection) if relation.to_many else selection.names
        columns = (column, *(name for name, _ in scope))
        return Join(
            scope,
            columns,
            key_collector(columns),
            frozenset(target.source_fields(names, self.level)),
            len(names),
        )


def _target_type(relation: Relation) -> str:
    from gateway.model.naming import type_name

    return type_name(relation.target_register, relation.target_entity)


def compile_plan(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    bindings: Mapping[str, Binding],
    roots: Mapping[str, Binding],
    level: int,
    where: WhereFn,
    order: OrderFn,
    limits: LimitSettings | None,
) -> Plan | None:
    """A plan for the operation, or None when it is outside what plans cover."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name and o.name.value == operation_name)
    ]
    if len(chosen) != 1 or chosen[0].operation != OperationType.QUERY or chosen[0].directives:
        return None
    operation = chosen[0]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    query_type = schema.query_type
    if query_type is None:
        return None
    compiler = _Compiler(schema, fragments, bindings, level)
    try:
        top = _collect(operation.selection_set, fragments, OrderedDict())
        plans: list[RootPlan] = []
        for key, group in top.items():
            name = group[0].name.value
            binding = roots.get(name)
            definition = query_type.fields.get(name)
            if binding is None or definition is None:
                return None  # introspection, __typename at the root, ...
            if any(
                a.name.value in (REGISTRATION, VALIDITY) for n in group for a in n.arguments or ()
            ):
                return None  # at an instant of the history: the field-by-field path
            if is_events(binding.entity):
                return None  # the events, narrowed to the caller's entities there
            child = compiler.connection(get_named_type(definition.type).name, group)
            selection = Selection(group, fragments, {})  # no directives: as for any variables
            plans.append(RootPlan(key, binding, group, definition, child, selection))
    except (Unsupported, KeyError):
        return None
    return Plan(
        schema,
        operation,
        fragments,
        plans,
        where,
        order,
        limits,
        document,
        operation_name,
        Variables(schema, operation),
    )


# --- running ------------------------------------------------------------------------------


class _Run:
    def __init__(self, plan: Plan, ctx: RequestContext, variables: Any) -> None:
        self.plan = plan
        self.ctx = ctx
        self.variables = variables
        self.args: dict[int, tuple[dict[str, Any], Filter | None, list[SortKey]]] = {}

    def arguments(
        self, definition: GraphQLField, node: FieldNode, binding: Binding
    ) -> tuple[dict[str, Any], Filter | None, list[SortKey]]:
        cached = self.args.get(id(node))
        if cached is None:
            kept = self.plan.arguments(node)
            key = kept.key(self.variables)
            cached = kept.get(key)
            if cached is None:
                args = get_argument_values(definition, node, self.variables)
                where = self.plan.where(binding.entity, args.get("where"))
                order = self.plan.order(binding.entity, args.get("order"))
                Window.from_args(args, self.ctx.runtime)  # raises for bad paging arguments
                cached = (args, where, order)
                kept.keep(key, cached)
            self.args[id(node)] = cached
        return cached

    def _allowed(self, level: int) -> None:
        if self.ctx.level < level:
            raise StepAside  # the full path reports (and logs) the denial

    def _check_filters(self, binding: Binding, where: Filter | None, order: list[SortKey]) -> None:
        self._allowed(binding.required_level(where, order))

    def preflight(self) -> None:
        """Every level check and argument, before any upstream request."""
        try:
            for root in self.plan.roots:
                _, where, order = self.arguments(root.definition, root.nodes[0], root.binding)
                self._check_filters(root.binding, where, order)
                self._check_connection(root.child)
        except StepAside:
            raise
        except Exception as exc:
            raise StepAside from exc

    def _check_connection(self, plan: ConnectionPlan) -> None:
        for _, name, sub in plan.fields:
            if name == "nodes":
                self._check_object(sub)
            elif name == "edges":
                for _, inner, node_plan in sub:
                    if inner == "node":
                        self._check_object(node_plan)

    def _check_object(self, plan: ObjectPlan) -> None:
        binding = plan.binding
        for f in plan.fields:
            if f.kind == "scalar":
                self._allowed(f.level)
            elif f.kind in ("one", "many"):
                assert f.relation is not None
                assert f.target is not None
                relation, target = f.relation, f.target
                for level, _ in join_requirements(binding, relation, target):
                    self._allowed(level)
                if f.kind == "many":
                    assert f.definition is not None
                    _, where, order = self.arguments(f.definition, f.nodes[0], target)
                    self._check_filters(target, where, order)
                    assert isinstance(f.child, ConnectionPlan)
                    self._check_connection(f.child)
                else:
                    assert isinstance(f.child, ObjectPlan)
                    self._check_object(f.child)

    async def root(self, root: RootPlan) -> dict[str, Any]:
        args, where, order = self.arguments(root.definition, root.nodes[0], root.binding)
        connection = await resolve_connection(
            self.ctx, root.binding, args, root.selection, where, order
        )
        (shaped,) = await self.connections([connection], root.child)
        return shaped

    async def connections(
        self, connections: list[dict[str, Any]], plan: ConnectionPlan
    ) -> list[dict[str, Any]]:
        """Shape several connections of one type at once (nested loads batched across them)."""
        if len(connections) == 1:
            rows: list[Row] = connections[0]["nodes"]
        else:
            rows = [row for c in connections for row in c["nodes"]]
        # In the order of the connection's fields: nodes and edges share the rows.
        shapers = [await self.prepare(rows, p) for p in plan.objects]
        shape = plan.shape
        return [shape(c, *shapers) for c in connections]

    async def objects(self, rows: list[Row], plan: ObjectPlan) -> list[dict[str, Any]]:
        """Shape rows of one entity type, relations loaded once for all."""
        return (await self.prepare(rows, plan))(rows)

    async def prepare(
        self, rows: list[Row], plan: ObjectPlan
    ) -> Callable[[list[Row]], list[dict[str, Any]]]:
        """The plan's shaper with the relations of ``rows`` loaded and bound (each relation
        a map from join key to shaped value, and the value of a row that joins nothing)."""
        jobs = plan.joined
        if not jobs:
            return plan.shape
        if not rows:
            return functools.partial(plan.shape, *(({}, None) * len(jobs)))
        if len(jobs) == 1:
            loaded = [await self.relation(rows, jobs[0])]
        else:
            loaded = await asyncio.gather(*(self.relation(rows, f) for f in jobs))
        return functools.partial(plan.shape, *itertools.chain.from_iterable(loaded))

    async def relation(self, rows: list[Row], f: FieldPlan) -> tuple[dict[Any, Any], Any]:
        """A relation's targets for ``rows``, shaped once per distinct join key."""
        assert f.relation is not None
        assert f.target is not None
        assert f.join is not None
        relation, target, join = f.relation, f.target, f.join
        unique = join.keys(rows)
        if f.kind == "one":
            found = (
                await load_related(
                    self.ctx,
                    target,
                    relation,
                    unique,
                    None,
                    (),
                    join.fetched,
                    join.selected,
                    join.scope,
                )
                if unique
                else []
            )
            if any(len(r) > 1 for r in found):
                raise StepAside  # the full path answers the ambiguous relation's error
            matched = [(k, r[0]) for k, r in zip(unique, found, strict=True) if r]
            assert isinstance(f.child, ObjectPlan)
            shaped = await self.objects([row for _, row in matched], f.child)
            return dict(zip([k for k, _ in matched], shaped, strict=True)), None
        assert f.definition is not None
        args, where, order = self.arguments(f.definition, f.nodes[0], target)
        window = Window.from_args(args, self.ctx.runtime)
        groups = (
            await load_related(
                self.ctx,
                target,
                relation,
                unique,
                where,
                order,
                join.fetched,
                join.selected,
                join.scope,
            )
            if unique
            else []
        )
        # One connection per distinct key, and last the one of a row that joins nothing.
        connections = [window_connection(group, window) for group in groups]
        connections.append(window_connection([], window))
        assert isinstance(f.child, ConnectionPlan)
        shaped_connections = await self.connections(connections, f.child)
        empty = shaped_connections.pop()
        return dict(zip(unique, shaped_connections, strict=True)), empty


class FastPath:
    """Plans per (document, operation, level), with bounded parse and validation caches."""

    def __init__(
        self,
        schema: GraphQLSchema,
        bindings: Mapping[str, Binding],
        roots: Mapping[str, Binding],
        where: WhereFn,
        order: OrderFn,
        limits: LimitSettings | None,
        size: int = 512,
    ) -> None:
        self.schema = schema
        self.bindings = bindings
        self.roots = roots
        self.where = where
        self.order = order
        self.limits = limits
        self.size = size
        self._plans: OrderedDict[tuple[str, str | None, int], Plan | None] = OrderedDict()
        self.runs = 0
        self.step_asides = 0

    def plan(self, query: str, operation_name: str | None, level: int) -> Plan | None:
        key = (query, operation_name, level)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = self._compile(query, operation_name, level)
        self._plans[key] = plan
        if len(self._plans) > self.size:
            self._plans.popitem(last=False)
        return plan

    def _compile(self, query: str, operation_name: str | None, level: int) -> Plan | None:
        try:
            document = parse(query)
        except GraphQLError:
            return None
        if validate(self.schema, document):
            return None
        return compile_plan(
            self.schema,
            document,
            operation_name,
            self.bindings,
            self.roots,
            level,
            self.where,
            self.order,
            self.limits,
        )
