"""One-pass execution for plain projections.

Most of a response is fields copied from upstream rows. graphql-core resolves each of them
through a Python call, which costs far more than the copying. For a validated operation this
module compiles, once per (document, operation, caller level), a plan that shapes each page
of rows into the response directly: scalars are copied and serialised with the schema's own
scalar functions, relations are loaded once per relation and level for all rows, and the
keys come out in the order graphql-core would produce them.

The plan covers documents made of our connection fields, scalars, relations, ``__typename``,
fragments and inline fragments. Anything else — introspection, ``@skip``/``@include``, a
denied field, a limit exceeded, an upstream error, a null in a non-null field — makes the
plan step aside, and the operation runs through strawberry as usual, so answers and errors
are those of the field-by-field path.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

from gateway.graphql.execute import (
    Binding,
    RequestContext,
    Window,
    join_key,
    join_requirements,
    join_scope,
    load_related,
    node_selection,
    resolve_connection,
    window_connection,
)
from gateway.graphql.limits import LimitSettings
from gateway.graphql.selection import Selection
from gateway.model.datamodel import Relation
from gateway.model.query import Filter, Row, SortKey

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
    serialize: Callable[[Any], Any] | None = None
    non_null: bool = False
    level: int = 0
    relation: Relation | None = None
    target: Binding | None = None
    child: ObjectPlan | ConnectionPlan | None = None


@dataclass(slots=True)
class ObjectPlan:
    """The fields of one entity type, in response order."""

    type_name: str
    binding: Binding
    fields: list[FieldPlan]
    # Per field, what the row loop needs: (key, column, serialize, non_null, step).
    steps: list[tuple[str, str, Callable[[Any], Any] | None, bool, int]] = field(
        init=False, default_factory=list
    )

    def __post_init__(self) -> None:
        codes = {"scalar": _SCALAR, "typename": _TYPENAME}
        self.steps = [
            (f.key, f.name, f.serialize, f.non_null, codes.get(f.kind, _RELATED))
            for f in self.fields
        ]


_SCALAR, _TYPENAME, _RELATED = 0, 1, 2


@dataclass(slots=True)
class ConnectionPlan:
    """The fields of a connection: nodes, edges, pageInfo, totalCount, __typename."""

    type_name: str
    binding: Binding
    fields: list[tuple[str, str, Any]]  # (key, name, sub-plan)


@dataclass(slots=True)
class RootPlan:
    key: str
    binding: Binding
    nodes: list[FieldNode]
    definition: GraphQLField
    child: ConnectionPlan


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
    _arguments: dict[int, Any] = field(default_factory=dict)

    async def run(self, ctx: RequestContext, raw_variables: Mapping[str, Any] | None) -> Any:
        """The response data, or :class:`StepAside`."""
        variables = get_variable_values(
            self.schema, self.operation.variable_definitions or (), dict(raw_variables or {})
        )
        if isinstance(variables, list):
            raise StepAside  # variable errors are reported by the full path
        # The limits were checked before the plan was looked up (GatewaySchema.execute).
        run = _Run(self, ctx, variables)
        run.preflight()
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
                              target=target, child=child)
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
                    serialize=_serializer(scalar),
                    non_null=isinstance(definition.type, GraphQLNonNull),
                    level=binding.field_level(name),
                )
            )
        return ObjectPlan(type_name, binding, plans)


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _serializer(scalar: GraphQLScalarType) -> Callable[[Any], Any]:
    """The scalar's output coercion, with the common case of each built-in scalar first.

    A value already of the scalar's own Python type (an int in range for ``Int``, a ``str``
    for ``String`` and ``ID`` strings, a ``bool``) is its own result in graphql-core; any
    other value takes graphql-core's way, with its conversions and errors.
    """
    serialize = scalar.serialize
    if scalar is GraphQLInt:

        def as_int(value: Any) -> Any:
            if type(value) is int and _INT_MIN <= value <= _INT_MAX:
                return value
            return serialize(value)

        return as_int
    if scalar is GraphQLString:
        return lambda value: value if type(value) is str else serialize(value)
    if scalar is GraphQLBoolean:
        return lambda value: value if type(value) is bool else serialize(value)
    return serialize


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
            child = compiler.connection(get_named_type(definition.type).name, group)
            plans.append(RootPlan(key, binding, group, definition, child))
    except (Unsupported, KeyError):
        return None
    return Plan(schema, operation, fragments, plans, where, order, limits, document, operation_name)


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
            args = get_argument_values(definition, node, self.variables)
            where = self.plan.where(binding.entity, args.get("where"))
            order = self.plan.order(binding.entity, args.get("order"))
            Window.from_args(args, self.ctx.runtime)  # raises for bad paging arguments
            cached = self.args[id(node)] = (args, where, order)
        return cached

    def _allowed(self, level: int) -> None:
        if self.ctx.level < level:
            raise StepAside  # the full path reports (and logs) the denial

    def _check_filters(self, binding: Binding, where: Filter | None, order: list[SortKey]) -> None:
        for level, _ in binding.requirements(where, order):
            self._allowed(level)

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
        selection = Selection(root.nodes, self.plan.fragments, self.variables)
        connection = await resolve_connection(self.ctx, root.binding, args, selection, where, order)
        (shaped,) = await self.connections([connection], root.child)
        return shaped

    async def connections(
        self, connections: list[dict[str, Any]], plan: ConnectionPlan
    ) -> list[dict[str, Any]]:
        """Shape several connections of one type at once (nested loads batched across them)."""
        outs: list[dict[str, Any]] = [{} for _ in connections]
        for key, name, sub in plan.fields:
            if name == "nodes":
                flat = [row for c in connections for row in c["nodes"]]
                shaped = iter(await self.objects(flat, sub))
                for out, c in zip(outs, connections, strict=True):
                    out[key] = [next(shaped) for _ in c["nodes"]]
            elif name == "edges":
                flat = [edge["node"] for c in connections for edge in c["edges"]]
                node_plans = [p for _, inner, p in sub if inner == "node"]
                shaped_nodes: list[Any] = []
                if node_plans:
                    # Several node keys (aliases) shape the same rows.
                    shaped_nodes = list(
                        zip(*[await self.objects(flat, p) for p in node_plans], strict=True)
                    )
                position = 0
                for out, c in zip(outs, connections, strict=True):
                    edges = []
                    for edge in c["edges"]:
                        item: dict[str, Any] = {}
                        which = 0
                        for k, inner, _ in sub:
                            if inner == "cursor":
                                item[k] = edge["cursor"]
                            elif inner == "__typename":
                                item[k] = f"{plan.binding.entity.graphql_name}Edge"
                            else:
                                item[k] = shaped_nodes[position][which]
                                which += 1
                        position += 1
                        edges.append(item)
                    out[key] = edges
            elif name == "pageInfo":
                for out, c in zip(outs, connections, strict=True):
                    info = c["pageInfo"]
                    out[key] = {k: ("PageInfo" if n == "__typename" else info[n]) for k, n in sub}
            elif name == "totalCount":
                for out, c in zip(outs, connections, strict=True):
                    if c["totalCount"] is None:
                        raise StepAside
                    out[key] = c["totalCount"]
            else:  # __typename
                for out in outs:
                    out[key] = plan.type_name
        return outs

    async def objects(
        self, rows: list[Row | None], plan: ObjectPlan
    ) -> list[dict[str, Any] | None]:
        """Shape rows of one entity type (None stays None), relations loaded once for all."""
        present = [r for r in rows if r is not None]
        related: dict[str, list[Any]] = {}
        jobs = [f for f in plan.fields if f.kind in ("one", "many")]
        if jobs and present:
            loaded = await asyncio.gather(*(self.relation(present, plan, f) for f in jobs))
            related = {f.key: values for f, values in zip(jobs, loaded, strict=True)}
        out: list[dict[str, Any] | None] = []
        steps, type_name = plan.steps, plan.type_name
        index = 0
        for row in rows:
            if row is None:
                out.append(None)
                continue
            item: dict[str, Any] = {}
            for key, name, serialize, non_null, step in steps:
                if step == _SCALAR:
                    value = row.get(name)
                    if value is None:
                        if non_null:
                            raise StepAside
                        item[key] = None
                    else:
                        item[key] = serialize(value)  # type: ignore[misc]
                elif step == _TYPENAME:
                    item[key] = type_name
                else:
                    item[key] = related[key][index]
            index += 1
            out.append(item)
        return out

    async def relation(self, rows: list[Row], plan: ObjectPlan, f: FieldPlan) -> list[Any]:
        assert f.relation is not None
        assert f.target is not None
        binding, relation, target = plan.binding, f.relation, f.target
        scope = join_scope(binding, relation, target)
        keys = [join_key(row, binding, relation, scope) for row in rows]
        unique = list(dict.fromkeys(k for k in keys if k is not None))
        selection = Selection(f.nodes, self.plan.fragments, self.variables)
        if f.kind == "one":
            fields = frozenset(target.source_fields(selection.names, self.ctx.level))
            found = (
                await load_related(
                    self.ctx,
                    target,
                    relation,
                    unique,
                    None,
                    (),
                    fields,
                    len(selection.names),
                    scope,
                )
                if unique
                else []
            )
            if any(len(r) > 1 for r in found):
                raise StepAside  # the full path answers the ambiguous relation's error
            by_key = {k: (r[0] if r else None) for k, r in zip(unique, found, strict=True)}
            assert isinstance(f.child, ObjectPlan)
            return await self.objects(
                [by_key.get(k) if k is not None else None for k in keys], f.child
            )
        assert f.definition is not None
        args, where, order = self.arguments(f.definition, f.nodes[0], target)
        window = Window.from_args(args, self.ctx.runtime)
        names = node_selection(selection)
        fields = frozenset(target.source_fields(names, self.ctx.level))
        groups = (
            await load_related(
                self.ctx, target, relation, unique, where, order, fields, len(names), scope
            )
            if unique
            else []
        )
        grouped = dict(zip(unique, groups, strict=True))
        connections = [
            window_connection(grouped.get(k, []) if k is not None else [], window) for k in keys
        ]
        assert isinstance(f.child, ConnectionPlan)
        return await self.connections(connections, f.child)


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
