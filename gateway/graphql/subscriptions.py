"""GraphQL subscriptions ("hændelser"): live updates from the registers' change detection.

For every entity with change events (:func:`gateway.sources.kinds.event_entities`) the
Subscription
type has a field ``{REG}_{Entity}_changed(where: {REG}_{Entity}FilterInput)`` whose events are
``{REG}_{Entity}Event``: ``id``, ``detectedAt``, ``upstream`` (what changed upstream: file
versions, batch numbers, update times) and ``nodes``, the new or changed rows that match
``where``. The same ``where`` as a query's narrows a subscription; it is evaluated in the
gateway on each change's rows, and a change none of whose rows match sends nothing.

Security, as for queries: at subscribe time the entity's level and the level of every field
the filter reads are checked (FORBIDDEN, and no subscription); on every event again, and
fields above the caller's level are removed from the rows before they are resolved, so a
selected one answers null plus FORBIDDEN at its path.

Subscriptions are served over ``graphql-transport-ws`` only (see :mod:`gateway.http.view`).
The caller's level is the connection's: from the handshake's headers or query string, or from
the ``connection_init`` payload, where browser clients put their credentials
(:mod:`gateway.http.protocol`).
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
import types
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

import strawberry
from strawberry.annotation import StrawberryAnnotation
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.field import StrawberryField

from gateway.events.bus import Feed, bus_for
from gateway.graphql.execute import Binding, RequestContext
from gateway.graphql.types import python_type
from gateway.history import temporal_fields
from gateway.model.datamodel import Entity, ScalarType
from gateway.model.errors import GatewayError
from gateway.model.filters import predicate
from gateway.model.query import Filter, Row
from gateway.sources.changes import Change
from gateway.sources.kinds import event_entities

__all__ = ["fields"]

log = logging.getLogger("gateway.graphql.subscriptions")


def _field(
    name: str,
    annotation: Any,
    description: str,
    resolver: Callable[..., Any] | None = None,
    arguments: list[StrawberryArgument] | None = None,
) -> StrawberryField:
    field = StrawberryField(python_name=name, graphql_name=name, description=description)
    if resolver is not None:
        field = field(resolver)
        field.arguments = list(arguments or ())
        field.is_subscription = True
    field.type_annotation = StrawberryAnnotation(annotation)
    return field


class TypeMaker(Protocol):
    """Makes the schema's generated classes (:class:`gateway.graphql.schema._TypeSet`)."""

    def shell(self, name: str) -> type:
        """An empty class of that name, to be finished."""

    def finish(
        self, cls: type, fields: Sequence[StrawberryField], *, description: str | None = None
    ) -> type:
        """The class with its strawberry definition."""


class SchemaParts(Protocol):
    """What the subscription fields take from the schema being built."""

    @property
    def bindings(self) -> Mapping[tuple[str, str], Binding]:
        """(register, entity) → its binding."""

    @property
    def filters(self) -> Mapping[str, type]:
        """Type name → its filter input type."""

    @property
    def objects(self) -> Mapping[str, type]:
        """Type name → its object type."""

    @property
    def types(self) -> TypeMaker:
        """Where generated classes are made."""

    def where(self, entity: Entity, value: Any) -> Filter | None:
        """A ``where`` argument as a filter tree."""


def fields(builder: SchemaParts) -> list[StrawberryField]:
    """The Subscription type's fields for the schema being built (after its types are).

    ``builder`` is the schema being built (:class:`gateway.graphql.schema._Builder`): its bindings,
    object and filter types,
    type set and ``where`` conversion are used.
    """
    out: list[StrawberryField] = []
    kinds: dict[str, set[str]] = {}
    for (register_name, entity_name), binding in sorted(builder.bindings.items()):
        if register_name not in kinds:
            kinds[register_name] = set(event_entities(binding.register))
        if entity_name not in kinds[register_name]:
            continue
        name = binding.entity.graphql_name
        event = _event_type(builder, binding)
        where = StrawberryArgument(
            python_name="where",
            graphql_name="where",
            type_annotation=StrawberryAnnotation(operator.or_(builder.filters[name], None)),
            default=None,
            description="Only rows matching this filter (as in queries).",
        )
        out.append(
            _field(
                f"{name}_changed",
                event,
                f"New or changed {name} rows, as {register_name}'s upstream publishes them.",
                resolver=_resolver(binding, builder),
                arguments=[where],
            )
        )
    return out


def _event_type(builder: SchemaParts, binding: Binding) -> type:
    name = binding.entity.graphql_name
    cls = builder.types.shell(f"{name}Event")
    members = [
        _field("id", str, "Identifies the change (the same for every subscriber)."),
        _field(
            "detectedAt",
            python_type(ScalarType.DATETIME),
            "When the gateway saw the change upstream (UTC).",
        ),
        _field(
            "upstream",
            types.GenericAlias(list, (str,)),
            "What changed upstream: file versions, batch numbers or update times.",
        ),
        _field(
            "action",
            str,
            "u: new or changed rows; d: rows deleted upstream (as last known).",
        ),
        _field(
            "nodes",
            types.GenericAlias(list, (builder.objects[name],)),
            "The rows that match the subscription's filter: new or changed ones, or (action d)"
            " the rows deleted upstream as the gateway last knew them (at least their key).",
        ),
    ]
    finished: type = builder.types.finish(
        cls, members, description=f"A change of {name} rows found upstream."
    )
    return finished


def _resolver(binding: Binding, builder: SchemaParts) -> Callable[..., Any]:
    async def subscribe(info: strawberry.Info, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        ctx: RequestContext = info.context
        where: Filter | None = builder.where(binding.entity, kwargs.get("where"))
        # Before subscribing: a refusal here is the operation's error, nothing is sent.
        binding.check(ctx, where, ())
        try:
            feed = bus_for(ctx.runtime.sources, ctx.runtime.cache).feed(
                binding.register.name, binding.entity.name
            )
        except Exception as exc:  # e.g. an adapter without the detector's hooks
            log.error("cannot watch %s", binding.register.name, exc_info=exc)
            raise GatewayError("Internal server error.") from None
        return _events(ctx, binding, where, feed)

    return subscribe


async def _events(
    ctx: RequestContext, binding: Binding, where: Filter | None, feed: Feed
) -> AsyncIterator[dict[str, Any]]:
    test = predicate(where, binding.entity)  # one subscription, one filter
    source = ctx.runtime.sources.get(binding.register.source_key)
    view = source.temporals.get(binding.entity.name) if source is not None else None
    try:
        while True:
            change = await feed.next()
            rows = [r for r in _temporal(change, view) if test(r)]
            if not rows:
                continue
            binding.check(ctx, where, ())
            # One connection's operations share a context: start every event afresh.
            ctx.loaders.clear()
            del ctx.notices[:]
            yield _payload(change, _visible(ctx, binding, rows))
    except GatewayError:
        raise
    except Exception as exc:
        log.error("subscription to %s failed", binding.entity.graphql_name, exc_info=exc)
        raise GatewayError("Internal server error.") from None
    finally:
        await feed.aclose()


def _temporal(change: Change, view: temporal_fields.Temporals | None) -> list[Row]:
    """A change's rows, with the entity's temporal fields (gateway/history/temporal_fields):
    a deleted row's registration ended when its deletion was found."""
    rows = list(change.rows or change.deleted)
    if view is None:
        return rows
    rows = temporal_fields.filled(rows, view)
    if not change.rows and temporal_fields.REGISTERED_TO in view.names:
        ended = temporal_fields.instant_of(change.detected_at, dt.UTC)
        for row in rows:
            row[temporal_fields.REGISTERED_TO] = ended
    return rows


def _visible(ctx: RequestContext, binding: Binding, rows: list[Row]) -> list[Row]:
    """The rows without the fields above the caller's level (as queries never fetch them)."""
    hidden = {f.name for f in binding.entity.fields if binding.field_level(f.name) > ctx.level}
    if not hidden:
        return rows
    return [{k: v for k, v in row.items() if k not in hidden} for row in rows]


def _payload(change: Change, rows: list[Row]) -> dict[str, Any]:
    return {
        "id": change.id,
        "detectedAt": change.detected_at,
        "upstream": list(change.upstream),
        "action": change.action,
        "nodes": rows,
    }
