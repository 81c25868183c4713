"""Apollo Federation 2: every register version's endpoint ``/{REG}/v{N}`` as a subgraph.

A federated schema (``SchemaSpec(federated=True)``) adds what a router needs:

- ``@key(fields: "…")`` on every entity type whose key fields are all in the schema (the
  datamodel's key, :attr:`gateway.model.datamodel.Entity.key`); a relation to such a type is
  an entity reference the router can extend with fields from other subgraphs;
- ``_service { sdl }``: the subgraph SDL, ``extend schema @link(url: …federation/v2.3,
  import: ["@key", "@shareable"])``, without the federation fields themselves, and with
  ``@shareable`` on the value types (``PageInfo``, connections, edges), which any other
  subgraph may define too;
- ``_entities(representations: [_Any!]!): [_Entity]!``: the rows the representations name
  by their key, in their order (null where no row has that key). All the representations of
  one type are one query to the register's source (through its cache, as relations are; an
  adapter may split a long key list into chunks, as for relations); relations below them
  are batched as everywhere else.

``/graphql`` serves every register merged and is not a subgraph: a supergraph composes the
per-register endpoints, one version of each register.

Security is the one of every query, at the level of the credential the router sends (it
must forward its client's): the entity's level and its key fields' levels are
checked before the upstream query (``FORBIDDEN`` at ``_entities.<index>``), fields above
the caller's level are not fetched and answer null with ``FORBIDDEN``. A representation
that names no entity of this subgraph, lacks a key field or holds a key value of the wrong
type answers null with a ``BAD_USER_INPUT`` error at its index; the others are answered.
The representations per request are bounded (:attr:`LimitSettings.max_representations`,
refused before execution as ``QUERY_TOO_COMPLEX``) and their rows are charged to the cost
meter like any connection's.

``_service`` follows the schema's publication: without introspection it is refused.
"""

from __future__ import annotations

import asyncio
import operator
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NewType, Protocol

import strawberry
from graphql import (
    ConstArgumentNode,
    ConstDirectiveNode,
    ConstListValueNode,
    DirectiveDefinitionNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLResolveInfo,
    InlineFragmentNode,
    NameNode,
    ObjectTypeDefinitionNode,
    SchemaExtensionNode,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    parse,
    print_ast,
)
from strawberry.annotation import StrawberryAnnotation
from strawberry.printer import print_schema
from strawberry.schema_directive import Location
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.field import StrawberryField
from strawberry.types.union import StrawberryUnion

from gateway.graphql.execute import Binding, RequestContext, for_caller
from gateway.graphql.selection import Selection
from gateway.model.datamodel import Entity, ScalarType
from gateway.model.errors import BadUserInputError, ForbiddenError, GatewayError
from gateway.model.keys import key_order
from gateway.model.query import And, Condition, Filter, Or, Query, Row

__all__ = [
    "ENTITIES",
    "FEDERATION_URL",
    "SERVICE",
    "directives",
    "fields",
    "keyed",
    "subgraph_sdl",
]

FEDERATION_URL = "https://specs.apollo.dev/federation/v2.3"
ENTITIES = "_entities"
SERVICE = "_service"

# Where an answered row carries the name of its type (no field name starts with "__").
_TYPENAME = "__typename"

# The federation types and fields, left out of the subgraph SDL.
_FEDERATION_TYPES = frozenset({"_Service", "_Entity", "_Any"})
_FEDERATION_FIELDS = frozenset({ENTITIES, SERVICE})
# The federation directives the subgraph SDL imports through @link (not defined in it).
_IMPORTED = ("key", "shareable")

# An unknown __typename's error names at most this many of the entities.
_LISTED = 8


@strawberry.schema_directive(
    locations=[Location.OBJECT],
    name="key",
    repeatable=True,
    description="Apollo Federation: the fields that identify an entity of this subgraph.",
)
class key:
    """``@key(fields: "…")``: the fields that identify an entity.

    Its definition is printed in the endpoint's SDL (``/{REG}/v{N}/schema``), so that the
    SDL stands alone; the subgraph SDL leaves it to the ``@link`` import instead.
    """

    fields: str


Representation = NewType("Representation", object)
"""``_Any``: one representation, ``{"__typename": …, <key fields>}``."""

Representation._scalar_definition = strawberry.scalar(  # type: ignore[attr-defined]
    name="_Any",
    description="An entity representation: its __typename and its key fields.",
    serialize=lambda value: value,
    parse_value=lambda value: value,
)


class TypeMaker(Protocol):
    """Makes the schema's generated classes (:class:`gateway.graphql.schema._TypeSet`)."""

    def shell(self, name: str) -> type:
        """An empty class of that name, to be finished."""

    def finish(
        self, cls: type, fields: Sequence[StrawberryField], *, description: str | None = None
    ) -> type:
        """The class with its strawberry definition."""


class Spec(Protocol):
    """What is served (:class:`gateway.graphql.schema.SchemaSpec`)."""

    @property
    def federated(self) -> bool:
        """Whether the schema is a subgraph."""

    def visible(self, level: int) -> bool:
        """Whether what needs ``level`` is in the schema."""


class SchemaParts(Protocol):
    """What the federation fields take from the schema being built."""

    @property
    def spec(self) -> Spec:
        """What the schema serves."""

    @property
    def bindings(self) -> Mapping[tuple[str, str], Binding]:
        """(register, entity) → its binding."""

    @property
    def objects(self) -> Mapping[str, type]:
        """Type name → its object type."""

    @property
    def types(self) -> TypeMaker:
        """Where generated classes are made."""


def keyed(spec: Spec, binding: Binding) -> bool:
    """Whether the entity is a federation entity here: a key, every key field in the schema."""
    entity = binding.entity
    return bool(entity.key) and all(
        name in entity.by_name
        and not entity.by_name[name].many
        and spec.visible(binding.field_level(name))
        for name in entity.key
    )


def directives(spec: Spec, binding: Binding) -> list[object]:
    """The federation directives of an entity's object type (none unless federated)."""
    if not spec.federated or not keyed(spec, binding):
        return []
    return [key(fields=" ".join(binding.entity.key))]


def fields(builder: SchemaParts, introspection: bool = True) -> list[StrawberryField]:
    """The Query fields of a subgraph: ``_entities`` (when it has entities) and ``_service``."""
    service = builder.types.finish(
        builder.types.shell("_Service"),
        [_field("sdl", str, "The subgraph schema (SDL) for composition.")],
        description="This subgraph, as a federation router sees it.",
    )
    out = [
        _field(
            SERVICE,
            service,
            "The subgraph's schema for a federation router (Apollo Federation 2).",
            resolver=_service_resolver(introspection),
        )
    ]
    entities = {
        b.entity.graphql_name: b for b in builder.bindings.values() if keyed(builder.spec, b)
    }
    if entities:
        union = _EntityUnion(
            "_Entity",
            type_annotations=tuple(
                StrawberryAnnotation(builder.objects[name]) for name in sorted(entities)
            ),
            description="Every type of this subgraph with a @key.",
        )
        representations = StrawberryArgument(
            python_name="representations",
            graphql_name="representations",
            type_annotation=StrawberryAnnotation(types.GenericAlias(list, (Representation,))),
            description="The entities wanted: their __typename and key fields.",
        )
        out.insert(
            0,
            _field(
                ENTITIES,
                types.GenericAlias(list, (operator.or_(union, None),)),
                "The entities the representations name, in their order (null: no such row).",
                resolver=_entities_resolver(entities),
                arguments=[representations],
            ),
        )
    return out


def _field(
    name: str,
    annotation: Any,
    description: str,
    resolver: Callable[..., Any] | None = None,
    arguments: Sequence[StrawberryArgument] = (),
) -> StrawberryField:
    f = StrawberryField(python_name=name, graphql_name=name, description=description)
    if resolver is not None:
        f = f(resolver)
        f.arguments = list(arguments)
    f.type_annotation = StrawberryAnnotation(annotation)
    return f


class _EntityUnion(StrawberryUnion):
    """``_Entity``: rows are dicts, so each answered row names its type."""

    def get_type_resolver(self, type_map: Any) -> Any:
        def resolve(root: Any, info: GraphQLResolveInfo[Any], type_: GraphQLAbstractType) -> Any:
            return root.get(_TYPENAME) if isinstance(root, dict) else None

        return resolve


# --- _service { sdl } --------------------------------------------------------------------


def _service_resolver(introspection: bool) -> Callable[..., Any]:
    def resolve(info: strawberry.Info) -> dict[str, str]:
        if not introspection:
            raise ForbiddenError("the schema is not published here (introspection is off)")
        return {"sdl": subgraph_sdl(info.schema)}

    return resolve


# Printed once per schema, kept as long as the schema lives.
_SDL: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def subgraph_sdl(schema: Any) -> str:
    """The subgraph SDL of a federated schema (printed once per schema)."""
    found = _SDL.get(schema)
    if found is None:
        found = _SDL[schema] = _subgraph_sdl(print_schema(schema))
    return found


def _subgraph_sdl(printed: str) -> str:
    document = parse(printed)
    definitions: list[Any] = [_link()]
    for definition in document.definitions:
        name = getattr(getattr(definition, "name", None), "value", None)
        if name in _FEDERATION_TYPES:
            continue
        if isinstance(definition, DirectiveDefinitionNode) and name in _IMPORTED:
            continue
        if isinstance(definition, ObjectTypeDefinitionNode):
            definition = _subgraph_object(definition)
        definitions.append(definition)
    return print_ast(DocumentNode(definitions=tuple(definitions)))


def _subgraph_object(definition: ObjectTypeDefinitionNode) -> ObjectTypeDefinitionNode:
    name = definition.name.value
    own = tuple(definition.directives or ())
    if name == "Query":
        kept = tuple(f for f in definition.fields or () if f.name.value not in _FEDERATION_FIELDS)
        return ObjectTypeDefinitionNode(
            description=definition.description,
            name=definition.name,
            interfaces=definition.interfaces,
            directives=own,
            fields=kept,
        )
    if name == "Subscription" or any(d.name.value == "key" for d in own):
        return definition
    # A value type (page info, connections, edges): other subgraphs may define it too.
    shareable = ConstDirectiveNode(name=NameNode(value="shareable"), arguments=())
    return ObjectTypeDefinitionNode(
        description=definition.description,
        name=definition.name,
        interfaces=definition.interfaces,
        directives=(*own, shareable),
        fields=definition.fields,
    )


def _link() -> SchemaExtensionNode:
    imports = ConstListValueNode(values=tuple(StringValueNode(value=f"@{n}") for n in _IMPORTED))
    link = ConstDirectiveNode(
        name=NameNode(value="link"),
        arguments=(
            ConstArgumentNode(
                name=NameNode(value="url"), value=StringValueNode(value=FEDERATION_URL)
            ),
            ConstArgumentNode(name=NameNode(value="import"), value=imports),
        ),
    )
    return SchemaExtensionNode(directives=(link,), operation_types=())


# --- _entities ------------------------------------------------------------------------------


def _entities_resolver(entities: Mapping[str, Binding]) -> Callable[..., Any]:
    async def resolve(info: strawberry.Info, representations: list[Any]) -> list[Any]:
        return await resolve_entities(info.context, entities, representations, info._raw_info)

    return resolve


async def resolve_entities(
    ctx: RequestContext,
    entities: Mapping[str, Binding],
    representations: Sequence[Any],
    info: GraphQLResolveInfo[Any],
) -> list[Any]:
    """The answer of ``_entities``: per representation its row, None, or its error."""
    limits = getattr(getattr(info.schema, "_strawberry_schema", None), "limit_settings", None)
    bound = limits.max_representations if limits is not None else None
    if bound is not None and len(representations) > bound:
        raise BadUserInputError(
            f"{len(representations)} representations; at most {bound} per request",
            limit=bound,
            requested=len(representations),
        )
    results: list[Any] = [None] * len(representations)
    wanted: dict[str, dict[tuple[Any, ...], list[int]]] = {}
    for index, representation in enumerate(representations):
        try:
            name, values = _parse(representation, entities)
        except BadUserInputError as error:
            results[index] = error
            continue
        wanted.setdefault(name, {}).setdefault(values, []).append(index)

    async def answer(name: str, keys: dict[tuple[Any, ...], list[int]]) -> None:
        binding = entities[name]
        try:
            rows = await _fetch(ctx, binding, list(keys), _selection(info, name))
        except (GatewayError, GraphQLError) as error:
            for indices in keys.values():
                for index in indices:
                    results[index] = error
            return
        for values, indices in keys.items():
            row = rows.get(_match(values))
            for index in indices:
                results[index] = None if row is None else {**row, _TYPENAME: name}

    await asyncio.gather(*(answer(name, keys) for name, keys in wanted.items()))
    return results


def _parse(representation: Any, entities: Mapping[str, Binding]) -> tuple[str, tuple[Any, ...]]:
    """A representation's type and key values (BAD_USER_INPUT if it names no entity here)."""
    if not isinstance(representation, dict):
        raise BadUserInputError("a representation must be an object with __typename and its key")
    name = representation.get(_TYPENAME)
    if not isinstance(name, str):
        raise BadUserInputError("a representation needs a __typename (a string)")
    binding = entities.get(name)
    if binding is None:
        known = sorted(entities)
        listed = ", ".join(known[:_LISTED]) + (", …" if len(known) > _LISTED else "")
        raise BadUserInputError(
            f"{name!r} is not an entity of this subgraph (the types with @key in "
            f"_service {{ sdl }}: {listed})",
            typename=name,
        )
    entity = binding.entity
    missing = [k for k in entity.key if representation.get(k) is None]
    if missing:
        raise BadUserInputError(
            f"a {name} representation needs its key fields "
            f'(@key(fields: "{" ".join(entity.key)}")); missing: {", ".join(missing)}',
            typename=name,
            missing=missing,
        )
    return name, tuple(_key_value(entity, k, representation[k]) for k in entity.key)


def _key_value(entity: Entity, name: str, value: Any) -> Any:
    kind = entity.field(name).type
    if kind in (ScalarType.INT, ScalarType.LONG):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif kind is ScalarType.FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif kind is ScalarType.BOOLEAN:
        if isinstance(value, bool):
            return value
    elif isinstance(value, str):
        return value
    raise BadUserInputError(
        f"{entity.graphql_name}.{name} is of type {kind.value}; the representation holds {value!r}",
        typename=entity.graphql_name,
        field=name,
    )


def _match(values: Sequence[Any]) -> tuple[str, ...]:
    return tuple(v if isinstance(v, str) else str(v) for v in values)


def _key_filter(entity: Entity, keys: Sequence[tuple[Any, ...]]) -> Filter:
    if len(entity.key) == 1:
        (name,) = entity.key
        return Condition(name, "in", sorted({k[0] for k in keys}, key=str))
    return Or(
        tuple(
            And(tuple(Condition(n, "eq", v) for n, v in zip(entity.key, values, strict=True)))
            for values in keys
        )
    )


def _selection(info: GraphQLResolveInfo[Any], name: str) -> Selection:
    """What the query selects on the entities of type ``name``."""
    chosen: list[SelectionNode] = []
    for node in info.field_nodes:
        for sel in node.selection_set.selections if node.selection_set else ():
            if isinstance(sel, InlineFragmentNode):
                condition = sel.type_condition
                if condition is not None and condition.name.value not in (name, "_Entity"):
                    continue
            elif isinstance(sel, FragmentSpreadNode):
                fragment: FragmentDefinitionNode | None = info.fragments.get(sel.name.value)
                if fragment is None or fragment.type_condition.name.value not in (
                    name,
                    "_Entity",
                ):
                    continue
            chosen.append(sel)
    holder = FieldNode(
        name=NameNode(value=ENTITIES),
        selection_set=SelectionSetNode(selections=tuple(chosen)),
        directives=(),
        arguments=(),
    )
    return Selection([holder], info.fragments, info.variable_values)


async def _fetch(
    ctx: RequestContext, binding: Binding, keys: list[tuple[Any, ...]], selection: Selection
) -> dict[tuple[str, ...], Row]:
    """The rows of ``keys`` in one query to the source, by their key values."""
    entity = binding.entity
    where = _key_filter(entity, keys)
    binding.check(ctx, where, ())
    names = selection.names - {"__typename"}
    fields = frozenset(binding.source_fields(names, ctx.level))
    if ctx.meter is not None:
        ctx.meter.check()
    ctx.touched.add(binding.register.name)
    options = for_caller(ctx, binding, {})
    query = Query(
        entity, where, key_order(entity, ()), limit=len(keys), fields=fields, options=options
    )
    page = await ctx.runtime.sources[binding.register.source_key].fetch(query)
    ctx.notices.extend(page.notices)
    if ctx.meter is not None:
        ctx.meter.charge(f"Query.{ENTITIES}", len(page.rows), len(names))
    return {_match([row.get(k) for k in entity.key]): row for row in page.rows}
