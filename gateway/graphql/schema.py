"""Generating the strawberry schema from loaded registers (names: :mod:`gateway.model.naming`).

For every entity: an object type ``{REG}_{Entity}`` (scalar fields and one field per
relation, named by its alias), a connection and edge type, a ``where`` input and a sort
input. The Query type has one connection field per entity.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.annotation import StrawberryAnnotation
from strawberry.extensions import AddValidationRules, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET

from gateway.dls.attribution import attribution
from gateway.graphql import federation, subscriptions
from gateway.graphql.arguments import order_keys, python_name, where_filter
from gateway.graphql.execute import (
    Binding,
    RequestContext,
    resolve_connection,
    resolve_guarded,
    resolve_many,
    resolve_one,
)
from gateway.graphql.fastpath import FastPath
from gateway.graphql.limits import LimitSettings
from gateway.graphql.pipeline import DOCUMENT_CACHE, GatewaySchema, parse_once
from gateway.graphql.response_cache import ResponseCache
from gateway.graphql.scalars import SCALAR_MAP, DateTime
from gateway.graphql.selection import subselection
from gateway.graphql.types import (
    OPERATION_INPUTS,
    PageInfo,
    SortEnumType,
    python_type,
    security_level,
)
from gateway.model.datamodel import Entity, Field, Register, Relation
from gateway.model.errors import GatewayError
from gateway.model.validity import VALIDITY
from gateway.sources.port import REGISTRATION

__all__ = [
    "GatewaySchema",
    "SchemaSpec",
    "build_schema",
    "credited_description",
    "field_description",
]


log = logging.getLogger("gateway.graphql.schema")

_MISSING = object()

# Where the generated fields' annotations are evaluated (they hold classes, not strings).
_NAMESPACE: dict[str, Any] = globals()


# A field's description lists at most this many codes of its code list.
_CODES_LISTED = 100


def credited_description(description: str, register: Register) -> str:
    """``description`` followed by the register's attribution, when its terms require one."""
    found = attribution(register)
    if found is None or not found.required:
        return description
    return f"{description}\n\nSource: {found.line()}"


def field_description(f: Field) -> str:
    """A field's description: its own text, its facets and its code list (DLS physical model)."""
    parts = [f.description or f.source]
    facets = _facet_text(f)
    if facets:
        parts.append(facets)
    if f.codes is not None:
        lines = [f"Codes ({f.codes.name}):"]
        for code in f.codes.codes[:_CODES_LISTED]:
            lines.append(
                f"- `{code.value}`" + (f": {code.description}" if code.description else "")
            )
        if len(f.codes.codes) > _CODES_LISTED:
            lines.append(f"- … and {len(f.codes.codes) - _CODES_LISTED} more")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _facet_text(f: Field) -> str:
    out = []
    low, high = f.facet("minLength"), f.facet("maxLength")
    if f.facet("length") is not None:
        out.append(f"Length: exactly {f.facet('length')} characters.")
    elif low is not None or high is not None:
        out.append(f"Length: {low or 0} to {high or 'any number of'} characters.")
    lower = [f"{v} ≤" for v in [f.facet("minInclusive")] if v is not None]
    lower += [f"{v} <" for v in [f.facet("minExclusive")] if v is not None]
    upper = [f"≤ {v}" for v in [f.facet("maxInclusive")] if v is not None]
    upper += [f"< {v}" for v in [f.facet("maxExclusive")] if v is not None]
    if lower or upper:
        out.append(f"Range: {' '.join([*lower, 'value', *upper])}.")
    if f.facet("totalDigits") is not None:
        out.append(f"At most {f.facet('totalDigits')} digits.")
    if f.facet("fractionDigits") is not None:
        out.append(f"At most {f.facet('fractionDigits')} digits after the decimal point.")
    out += [f"Pattern: `{value}`." for key, value in f.facets if key == "pattern"]
    return " ".join(out)


def _default_resolver(obj: Any, name: str) -> Any:
    # Rows are plain dicts keyed by GraphQL field name; a field whose name is a Python
    # keyword has a trailing "_" on the Python side only.
    if type(obj) is dict:
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            value = obj.get(name[:-1]) if name.endswith("_") else None
        return value
    return getattr(obj, name)


def _list(item: Any) -> Any:
    return types.GenericAlias(list, (item,))


def _optional(item: Any) -> Any:
    return operator.or_(item, None)


def _init_input(self: Any, **values: Any) -> None:
    # strawberry builds an input value as ``cls(**converted_fields)``; fields the client
    # left out are absent and read as UNSET (see ``_input_value``).
    self.__dict__.update(values)


class _TypeSet:
    """The generated classes of one schema, made in two phases so relations can cycle.

    The classes get their strawberry definition directly, as integrations that make their
    own types do, rather than through ``strawberry.type``: that would make each of several
    hundred generated classes a dataclass (compiling ``__init__``, ``__repr__`` and
    ``__eq__`` for every one) and resolve every field's annotation several times over,
    about half of the start-up time. Nothing instantiates the object types (rows are
    dicts); input classes take their fields as keyword arguments.
    """

    def __init__(self) -> None:
        self.classes: dict[str, type] = {}

    def shell(self, name: str) -> type:
        cls = types.new_class(name, (), {})
        self.classes[name] = cls
        return cls

    @staticmethod
    def finish(
        cls: type,
        fields: Sequence[StrawberryField],
        *,
        is_input: bool = False,
        description: str | None = None,
        directives: Sequence[object] = (),
    ) -> type:
        for f in fields:
            f.origin = cls
            assert f.type_annotation is not None
            f.type_annotation.namespace = _NAMESPACE
        if is_input:
            cls.__init__ = _init_input  # type: ignore[misc]
        definition = StrawberryObjectDefinition(
            name=cls.__name__,
            is_input=is_input,
            is_interface=False,
            origin=cls,
            description=description,
            interfaces=[],
            extend=False,
            directives=directives,
            is_type_of=None,
            resolve_type=None,
            fields=list(fields),
        )
        cls.__strawberry_definition__ = definition  # type: ignore[attr-defined]
        return cls


def _field(
    name: str,
    annotation: Any,
    *,
    description: str | None = None,
    resolver: Callable[..., Any] | None = None,
    arguments: Sequence[StrawberryArgument] = (),
    directives: Sequence[object] = (),
    default: Any = UNSET,
) -> StrawberryField:
    f = StrawberryField(
        python_name=python_name(name),
        graphql_name=name,
        description=description,
        directives=directives,
        default=default,
    )
    if resolver is not None:
        f = f(resolver)
        f.arguments = list(arguments)
    f.type_annotation = StrawberryAnnotation(annotation)
    return f


def _argument(
    name: str, annotation: Any, default: Any = None, description: str = ""
) -> StrawberryArgument:
    return StrawberryArgument(
        python_name=name,
        graphql_name=name,
        type_annotation=StrawberryAnnotation(annotation),
        default=default,
        description=description or None,
    )


class SchemaSpec:
    """Which registers a schema serves, at which RelationVersion each, and for whom.

    With ``max_level`` set, the schema leaves out what a caller of that level may not see
    (entities, fields, relations into them): a per-level schema. Without it, everything is
    in the schema and each field states its level with ``@securityLevel``.

    With ``federated``, the schema is also an Apollo Federation 2 subgraph
    (:mod:`gateway.graphql.federation`).
    """

    def __init__(
        self,
        registers: Sequence[Register],
        versions: Mapping[str, str] | None = None,
        max_level: int | None = None,
        federated: bool = False,
    ):
        self.registers = {r.name: r for r in registers}
        self.versions = {r.name: (versions or {}).get(r.name, r.newest_version) for r in registers}
        self.max_level = max_level
        self.federated = federated

    def visible(self, level: int) -> bool:
        return self.max_level is None or level <= self.max_level

    def entities(self, register: Register) -> list[Entity]:
        own = [*register.datamodel.entities.values()]
        if register.events is not None:
            own.append(register.events)
        return [e for e in own if self.visible(register.entity_level(e.name))]

    def fields(self, register: Register, entity: Entity) -> list[str]:
        return [
            f.name
            for f in entity.fields
            if self.visible(register.field_level(entity.name, f.source))
        ]

    def relations(self, register: Register, entity: Entity) -> dict[str, Relation]:
        """The relations of ``entity`` in this schema (targets outside it are left out)."""
        version = self.versions[register.name]
        out: dict[str, Relation] = {}
        for r in register.relation_versions.get(version, ()):
            if r.source_entity != entity.name or r.target_register not in self.registers:
                continue
            target = self.registers[r.target_register]
            levels = (
                target.entity_level(r.target_entity),
                register.field_level(entity.name, r.source_field),
                target.field_level(r.target_entity, r.target_field),
            )
            if all(self.visible(level) for level in levels):
                out[r.alias] = r
        return out


class _Builder:
    def __init__(self, spec: SchemaSpec, introspection: bool = True) -> None:
        self.spec = spec
        self.introspection = introspection
        self.types = _TypeSet()
        self.bindings: dict[tuple[str, str], Binding] = {}
        self.filters: dict[str, type] = {}
        self.sorts: dict[str, type] = {}
        self.objects: dict[str, type] = {}
        self.connections: dict[str, type] = {}
        self.subscription: type | None = None

    def build(self) -> type:
        entities = [
            (register, entity)
            for register in self.spec.registers.values()
            for entity in self.spec.entities(register)
        ]
        for register, entity in entities:
            self.bindings[(register.name, entity.name)] = Binding(
                register, entity, self.spec.relations(register, entity)
            )
            for suffix, store in (
                ("", self.objects),
                ("Connection", self.connections),
                ("FilterInput", self.filters),
                ("SortInput", self.sorts),
            ):
                store[entity.graphql_name] = self.types.shell(f"{entity.graphql_name}{suffix}")
        root_fields = []
        for register, entity in entities:
            binding = self.bindings[(register.name, entity.name)]
            self._finish_entity(binding)
            root_fields.append(self._root_field(binding))
        if self.spec.federated:
            root_fields += federation.fields(self, self.introspection)
        live = subscriptions.fields(self)
        if live:
            self.subscription = self.types.finish(
                self.types.shell("Subscription"),
                live,
                description="Live updates from the registers' change detection.",
            )
        query = self.types.shell("Query")
        return self.types.finish(
            query, root_fields, description="Read-only access to the registers."
        )

    # -- per entity --------------------------------------------------------------------

    def _finish_entity(self, binding: Binding) -> None:
        entity, register = binding.entity, binding.register
        name = entity.graphql_name
        visible = self.spec.fields(register, entity)
        fields = [self._scalar_field(binding, name) for name in visible]
        fields += [self._relation_field(binding, r) for r in binding.relations.values()]
        self.types.finish(
            self.objects[name],
            fields,
            description=credited_description(entity.description or entity.name, register),
            directives=[
                security_level(level=register.entity_level(entity.name)),
                *federation.directives(self.spec, binding),
            ],
        )
        edge = self.types.shell(f"{name}Edge")
        self.types.finish(
            edge,
            [_field("cursor", str), _field("node", self.objects[name])],
            description=f"A {name} and its cursor.",
        )
        self.types.finish(
            self.connections[name],
            [
                _field("nodes", _list(self.objects[name])),
                _field("edges", _list(edge)),
                _field("pageInfo", PageInfo),
                _field("totalCount", int, description="All rows matching the filter."),
            ],
            description=f"A page of {name} rows.",
        )
        filter_cls = self.filters[name]
        filter_fields = [
            _field("and", _optional(_list(filter_cls))),
            _field("or", _optional(_list(filter_cls))),
        ] + [
            # Undescribed: the entity's field describes it (introspection stays small).
            _field(f.name, _optional(OPERATION_INPUTS[f.type]))
            for f in map(entity.field, visible)
            if not f.many  # a list is neither filtered nor sorted on
        ]
        self.types.finish(filter_cls, filter_fields, is_input=True, description=f"Filter {name}.")
        self.types.finish(
            self.sorts[name],
            [
                _field(name, _optional(SortEnumType))
                for name in visible
                if not entity.field(name).many
            ],
            is_input=True,
            description=f"Order {name} rows by a field.",
        )

    def _scalar_field(self, binding: Binding, name: str) -> StrawberryField:
        f = binding.entity.field(name)
        annotation = _list(python_type(f.type)) if f.many else python_type(f.type)
        description = field_description(f)
        entity_level = binding.register.entity_level(binding.entity.name)
        level = binding.register.field_level(binding.entity.name, f.source)
        if level > entity_level:
            # A field above its entity's level answers null plus FORBIDDEN to lower callers,
            # so it is nullable whatever the upstream says.
            return _field(
                f.name,
                _optional(annotation),
                description=description,
                directives=[security_level(level=level)],
                resolver=_guarded_resolver(binding, f.name),
            )
        return _field(
            f.name,
            _optional(annotation) if f.nullable else annotation,
            description=description,
        )

    def _connection_args(self, target: Entity, documented: bool = True) -> list[StrawberryArgument]:
        """Paging, filter and order; the paging arguments are described on root fields only
        (every relation repeats them: introspection answers stay small)."""
        name = target.graphql_name
        say = (lambda text: text) if documented else (lambda text: "")
        return [
            _argument("first", int | None, description=say("Rows from the start (default 100).")),
            _argument("after", str | None, description=say("Continue after this cursor.")),
            _argument("last", int | None, description=say("Rows from the end.")),
            _argument("before", str | None, description=say("Stop before this cursor.")),
            _argument("where", _optional(self.filters[name])),
            _argument("order", _optional(_list(self.sorts[name]))),
        ]

    def _root_field(self, binding: Binding) -> StrawberryField:
        entity = binding.entity
        resolver = _root_resolver(binding, self)
        # Nullable, so that one failing register leaves the other root fields answered.
        return _field(
            entity.graphql_name,
            _optional(self.connections[entity.graphql_name]),
            description=entity.description or entity.name,
            resolver=resolver,
            arguments=[
                *self._connection_args(entity),
                _argument(
                    "registreringstid",
                    DateTime | None,
                    description="Answer as the register stood at this instant (what it said "
                    "then; without an offset: UTC), carried into every relation below. "
                    "Omitted: now. Answered for registers whose history the gateway keeps.",
                ),
                _argument(
                    VALIDITY,
                    DateTime | None,
                    description="Only rows valid in the world at this instant (virkningstid: "
                    "their validity interval, as the register's bitemporality annex declares "
                    "it, holds it; without an offset: UTC), carried into every relation "
                    "below. Omitted: every row. An entity without declared validity is not "
                    "narrowed (a VALIDITY_UNDECLARED notice says so).",
                ),
            ],
        )

    def _relation_field(self, binding: Binding, relation: Relation) -> StrawberryField:
        target = self.bindings[(relation.target_register, relation.target_entity)]
        name = target.entity.graphql_name
        description = (
            f"{relation.source_entity}.{relation.source_field} → "
            f"{relation.target_register} {relation.target_entity}.{relation.target_field}"
        )
        if relation.to_many:
            return _field(
                relation.alias,
                _optional(self.connections[name]),
                description=description,
                resolver=_many_resolver(binding, relation, target, self),
                arguments=self._connection_args(target.entity, documented=False),
            )
        return _field(
            relation.alias,
            _optional(self.objects[name]),
            description=description,
            resolver=_one_resolver(binding, relation, target),
        )

    # -- arguments → filter tree ------------------------------------------------------

    # ``where`` and ``order`` arguments → the query's filter and sort keys.
    where = staticmethod(where_filter)
    order = staticmethod(order_keys)


def _root_resolver(binding: Binding, builder: _Builder) -> Callable[..., Any]:
    async def resolve(info: strawberry.Info, **kwargs: Any) -> Any:
        ctx: RequestContext = info.context
        instants = (kwargs.get(REGISTRATION), kwargs.get(VALIDITY))
        if instants != (None, None):
            ctx.instants[str(info.path.key)] = instants  # for the relations below this root
        return await resolve_connection(
            ctx,
            binding,
            kwargs,
            subselection(info),
            builder.where(binding.entity, kwargs.get("where")),
            builder.order(binding.entity, kwargs.get("order")),
        )

    return resolve


def _guarded_resolver(binding: Binding, name: str) -> Callable[..., Any]:
    def resolve(root: Any, info: strawberry.Info) -> Any:
        return resolve_guarded(info.context, root, binding, name)

    return resolve


def _one_resolver(binding: Binding, relation: Relation, target: Binding) -> Callable[..., Any]:
    async def resolve(root: Any, info: strawberry.Info) -> Any:
        ctx: RequestContext = info.context
        return await resolve_one(
            ctx, root, binding, relation, target, subselection(info), _instant(ctx, info)
        )

    return resolve


def _many_resolver(
    binding: Binding, relation: Relation, target: Binding, builder: _Builder
) -> Callable[..., Any]:
    async def resolve(root: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        return await resolve_many(
            info.context,
            root,
            binding,
            relation,
            target,
            kwargs,
            subselection(info),
            builder.where(target.entity, kwargs.get("where")),
            builder.order(target.entity, kwargs.get("order")),
            _instant(info.context, info),
        )

    return resolve


def _instant(ctx: RequestContext, info: strawberry.Info) -> Any:
    """The (``registreringstid``, ``virkningstid``) of the root field a relation is below
    (None: now, every row)."""
    if not ctx.instants:
        return None
    path = info.path
    while path.prev is not None:
        path = path.prev
    return ctx.instants.get(str(path.key))


class ErrorCodes(SchemaExtension):
    """Every error gets an ``extensions.code``; unexpected errors are masked and logged."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [_with_code(e) for e in result.errors]

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        notices = getattr(context, "notices", None)
        return {"notices": notices} if notices else {}


class ParsedOnce(SchemaExtension):
    """Parse each document text once (bounded); graphql-core never changes a parsed document.

    A document that does not parse is left to strawberry's own parsing, which reports the
    syntax error as an answer (with its code) rather than raising out of the extension.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            options = tuple(sorted(context.parse_options.items()))
            # (TypeError: an option that cannot be a cache key; strawberry parses it then.)
            with contextlib.suppress(GraphQLError, TypeError):
                context.graphql_document = parse_once(context.query, options)
        yield


def _with_code(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GatewayError) or (error.extensions or {}).get("code"):
        return error
    if original is None:
        code = (
            "GRAPHQL_PARSE_FAILED"
            if error.message.startswith("Syntax Error")
            else ("GRAPHQL_VALIDATION_FAILED")
        )
        error.extensions = {**(error.extensions or {}), "code": code}
        return error
    if isinstance(original, GraphQLError):
        return _with_code(original)
    log.error("unexpected error at %s", error.path, exc_info=original)
    return GraphQLError(
        "Internal server error.",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR"},
    )


def build_schema(
    spec: SchemaSpec,
    limits: LimitSettings | None = None,
    introspection: bool = True,
    response_cache: ResponseCache | None = None,
    fast_path: bool = True,
) -> GatewaySchema:
    """Generate the schema for ``spec``."""
    builder = _Builder(spec, introspection)
    query = builder.build()
    # Documents the one-pass path leaves to strawberry (introspection, directives, denials)
    # are parsed and validated once per text (bounded; validation is keyed by schema too).
    extensions: list[Any] = [
        ErrorCodes,
        ParsedOnce,
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE),
    ]
    if not introspection:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
    schema = GatewaySchema(
        query=query,
        subscription=builder.subscription,
        extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=False, default_resolver=_default_resolver, scalar_map=SCALAR_MAP
        ),
    )
    schema.limit_settings = limits
    schema.response_cache = response_cache
    by_type = {b.entity.graphql_name: b for b in builder.bindings.values()}
    schema.bindings_by_type = by_type
    if fast_path:
        roots = {
            b.entity.graphql_name: b
            for b in builder.bindings.values()
            if b.entity.graphql_name in schema._schema.query_type.fields  # type: ignore[union-attr]
        }
        schema.fast_path = FastPath(
            schema._schema, by_type, roots, builder.where, builder.order, limits
        )
    return schema
