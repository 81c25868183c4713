"""Resolving root connections and relations: paging, projection, batching.

Root fields become one :class:`Query` to the register's source. Relations become one query
per relation and request (a DataLoader collects the keys of every parent row), so the number
of upstream requests depends on the relation levels of the query, not on the rows.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from gateway.graphql.demand import Meter, Observed, entity_id
from gateway.graphql.selection import Selection
from gateway.history.events import VISIBLE, is_events
from gateway.model.datamodel import Entity, Register, Relation, ScalarType
from gateway.model.errors import BadUserInputError, ForbiddenError, UpstreamInvalidError
from gateway.model.keys import key_order
from gateway.model.naming import type_name
from gateway.model.query import And, Condition, Filter, Page, Query, Row, SortKey, filter_fields
from gateway.model.validity import VALIDITY, valid_at, validity_notice
from gateway.sources.cache import NOTICES, Cache
from gateway.sources.metrics import Metrics
from gateway.sources.port import REGISTRATION, Source

__all__ = [
    "Binding",
    "RequestContext",
    "Runtime",
    "Window",
    "ambiguous",
    "check_join",
    "decode_cursor",
    "encode_cursor",
    "join_key",
    "join_requirements",
    "join_scope",
    "load_related",
    "node_selection",
    "resolve_connection",
    "resolve_guarded",
    "resolve_many",
    "resolve_one",
    "scope_fields",
    "window_connection",
]

CONNECTION_FIELDS = frozenset({"nodes", "edges", "pageInfo", "totalCount"})

log = logging.getLogger("gateway.security")


@dataclass(slots=True)
class Runtime:
    """What every request shares: registers, their sources, limits."""

    registers: Mapping[str, Register]
    sources: Mapping[str, Source]
    default_first: int = 100
    max_first: int = 1000
    cache: Cache | None = None
    metrics: Metrics | None = None
    observed: Observed = field(default_factory=Observed)


@dataclass(slots=True)
class RequestContext:
    """Per request: the caller's level, the DataLoaders, notices for ``extensions``."""

    runtime: Runtime
    level: int = 0
    caller: str = "anonymous"
    loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)
    notices: list[dict[str, Any]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    meter: Meter | None = None
    denied: dict[str, tuple[int, int]] = field(default_factory=dict)
    defer_denial_log: bool = False
    # Per root field (response key): the registreringstid it was asked at.
    instants: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Share the request's notice list with the cache (stale answers), if one is set.
        shared = NOTICES.get()
        if shared is not None:
            shared.extend(self.notices)
            self.notices = shared

    def require(self, level: int, what: str) -> None:
        """Deny (FORBIDDEN, logged) unless the caller's level reaches ``level``."""
        if self.level >= level:
            return
        if self.runtime.metrics is not None:
            self.runtime.metrics.denied.labels(str(level), str(self.level)).inc()
        seen = self.denied.get(what)
        self.denied[what] = (level, 1 if seen is None else seen[1] + 1)
        if not self.defer_denial_log:
            log.warning(
                "denied caller=%s level=%d required=%d what=%s",
                self.caller,
                self.level,
                level,
                what,
            )
        raise ForbiddenError(
            f"{what} requires security level {level}; the caller has level {self.level}",
            requiredLevel=level,
        )

    def log_denials(self) -> None:
        """One log line for all the denials of a request (when they were deferred)."""
        if not self.denied:
            return
        (what, (level, count)), *rest = self.denied.items()
        more = "".join(f"; {w} required={lv} x{n}" for w, (lv, n) in rest)
        log.warning(
            "denied caller=%s level=%d required=%d what=%s x%d%s",
            self.caller,
            self.level,
            level,
            what,
            count,
            more,
        )
        self.denied.clear()

    def loader(self, key: Hashable, load: Callable[[list[Any]], Any]) -> DataLoader[Any, Any]:
        found = self.loaders.get(key)
        if found is None:
            found = self.loaders[key] = DataLoader(load_fn=load)
        return found


_FIELDS_KEPT = 256


@dataclass(frozen=True, slots=True)
class Binding:
    """An entity as served in one schema: its relations (by alias) and its source."""

    register: Register
    entity: Entity
    relations: Mapping[str, Relation]
    # What source_fields worked out per (selection, level): selections repeat per document.
    _fields: dict[tuple[frozenset[str], int], frozenset[str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def level(self) -> int:
        return self.register.entity_level(self.entity.name)

    def field_level(self, name: str) -> int:
        """The level of a field (GraphQL name): the higher of its entity's and its own."""
        return self.register.field_level(self.entity.name, self.entity.field(name).source)

    def requirements(
        self, where: Filter | None, order: Sequence[SortKey]
    ) -> Iterator[tuple[int, str]]:
        """The levels reading this entity with ``where`` and ``order`` needs, each with what
        it is for: the entity, and every field a filter or order reads. Both execution paths
        check these (:meth:`check` denies; the one-pass path steps aside)."""
        name = self.entity.graphql_name
        yield self.level, name
        for field_name in sorted(filter_fields(where)):
            yield self.field_level(field_name), f"filtering on {name}.{field_name}"
        for key in order:
            yield self.field_level(key.field), f"ordering by {name}.{key.field}"

    def required_level(self, where: Filter | None, order: Sequence[SortKey]) -> int:
        """The highest of :meth:`requirements`' levels (without describing them)."""
        level = self.level
        register, entity = self.register, self.entity
        for name in filter_fields(where):
            level = max(level, register.field_level(entity.name, entity.field(name).source))
        for key in order:
            level = max(level, register.field_level(entity.name, entity.field(key.field).source))
        return level

    def check(self, ctx: RequestContext, where: Filter | None, order: Sequence[SortKey]) -> None:
        """Before any upstream call: deny unless the caller meets every requirement."""
        if ctx.level >= self.required_level(where, order):
            return
        for level, what in self.requirements(where, order):
            ctx.require(level, what)

    def source_fields(self, selected: Set[str], level: int) -> frozenset[str]:
        """The fields a selection needs from the upstream: scalars, keys, join columns.

        Fields above the caller's ``level`` are not even fetched: they will answer FORBIDDEN.
        """
        memo = (frozenset(selected), level)
        found = self._fields.get(memo)
        if found is None:
            found = frozenset(self._source_fields(selected, level))
            if len(self._fields) >= _FIELDS_KEPT:
                self._fields.clear()
            self._fields[memo] = found
        return found

    def _source_fields(self, selected: Set[str], level: int) -> set[str]:
        needed = set(self.entity.key)
        for name in selected:
            relation = self.relations.get(name)
            if relation is not None:
                name = self.entity.by_source[relation.source_field].name
                needed.update(f for f in scope_fields(self) if self.field_level(f) <= level)
            if name in self.entity.by_name and self.field_level(name) <= level:
                needed.add(name)
        return needed


def scope_fields(binding: Binding) -> list[str]:
    """The fields (GraphQL names) of ``binding``'s entity that scope its register's joins:
    the register's ``joinScope`` (``Source.json``, e.g. the folder of one election)."""
    names = binding.register.source.get("joinScope") if binding.register.source else None
    if not isinstance(names, list):
        return []
    fields = (binding.entity.by_source.get(str(n)) for n in names)
    return [f.name for f in fields if f is not None]


# --- cursors and windows ---------------------------------------------------------------


def encode_cursor(offset: int) -> str:
    """An opaque cursor for the row at ``offset`` of an ordered result."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode("ascii")


def decode_cursor(cursor: str) -> int:
    """The offset a cursor stands for (BAD_USER_INPUT if it is not ours)."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        kind, _, number = text.partition(":")
        offset = int(number)
    except (ValueError, UnicodeError, binascii.Error):
        raise BadUserInputError(f"invalid cursor {cursor!r}") from None
    if kind != "o" or offset < 0:
        raise BadUserInputError(f"invalid cursor {cursor!r}")
    return offset


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows of an ordered result a connection's arguments ask for."""

    start: int
    stop: int | None  # exclusive; None = up to the end (only with ``last``)
    last: int | None  # keep only the last N rows of [start, stop)

    @classmethod
    def from_args(cls, args: Mapping[str, Any], runtime: Runtime) -> Window:
        first, last = args.get("first"), args.get("last")
        after, before = args.get("after"), args.get("before")
        for name, value in (("first", first), ("last", last)):
            if value is not None and value < 0:
                raise BadUserInputError(f"{name} must not be negative")
            if value is not None and value > runtime.max_first:
                raise BadUserInputError(
                    f"{name} must be at most {runtime.max_first}; page with cursors "
                    "(after/before) or use the file exports for larger pulls",
                    limit=runtime.max_first,
                    requested=value,
                )
        if first is None and last is None:
            first = runtime.default_first
        start = decode_cursor(after) + 1 if after is not None else 0
        stop = decode_cursor(before) if before is not None else None
        if stop is not None and stop < start:
            stop = start
        if first is not None:
            stop = start + first if stop is None else min(stop, start + first)
        return cls(start, stop, last)


class Edges(Sequence[dict[str, Any]]):
    """The edges of a connection, made only when read (most queries select only nodes)."""

    __slots__ = ("_rows", "_start")

    def __init__(self, rows: list[Row], start: int) -> None:
        self._rows = rows
        self._start = start

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._rows)))]
        position = index + len(self._rows) if index < 0 else index
        return {"cursor": encode_cursor(self._start + position), "node": self._rows[position]}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i, row in enumerate(self._rows):
            yield {"cursor": encode_cursor(self._start + i), "node": row}


def _connection(rows: list[Row], start: int, has_next: bool, total: int | None) -> dict[str, Any]:
    return {
        "nodes": rows,
        "edges": Edges(rows, start),
        "totalCount": total,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": start > 0,
            "startCursor": encode_cursor(start) if rows else None,
            "endCursor": encode_cursor(start + len(rows) - 1) if rows else None,
        },
    }


def node_selection(selection: Selection) -> frozenset[str]:
    return selection.node_names()


def _order(binding: Binding, order: Sequence[SortKey]) -> tuple[SortKey, ...]:
    return key_order(binding.entity, order)


# --- root connections ------------------------------------------------------------------


async def resolve_connection(
    ctx: RequestContext,
    binding: Binding,
    args: Mapping[str, Any],
    selection: Selection,
    where: Filter | None,
    order: Sequence[SortKey],
) -> dict[str, Any]:
    """A root field: one query to the source for the window the arguments describe."""
    binding.check(ctx, where, order)
    window = Window.from_args(args, ctx.runtime)
    source = ctx.runtime.sources[binding.register.source_key]
    names = node_selection(selection)
    fields = frozenset(binding.source_fields(names, ctx.level))
    selected = len(names)
    want_count = "totalCount" in selection
    full_order = _order(binding, order)
    options = at_instant(args.get(REGISTRATION))
    validity = args.get(VALIDITY)
    if validity is not None:
        where = _valid(ctx, binding, where, validity)
    options = for_caller(ctx, binding, options)
    ctx.touched.add(binding.register.name)

    async def fetch(offset: int, limit: int | None, count: bool) -> Page:
        query = Query(binding.entity, where, full_order, offset, limit, fields, count, options)
        if ctx.meter is not None:
            ctx.meter.check()
        page = await source.fetch(query)
        ctx.notices.extend(page.notices)
        if where is None:
            if page.total is not None:
                ctx.runtime.observed.saw_total(entity_id(binding.entity), page.total)
            elif offset == 0 and not page.has_more and (limit is None or len(page.rows) < limit):
                ctx.runtime.observed.saw_total(entity_id(binding.entity), len(page.rows))
        if ctx.meter is not None:
            ctx.meter.charge(f"Query.{binding.entity.graphql_name}", len(page.rows), selected)
        return page

    start, stop = window.start, window.stop
    total: int | None = None
    if window.last is not None:
        if stop is None:
            # Counting backwards from the end needs the end: ask for the count first.
            total = (await fetch(0, 0, True)).total or 0
            stop = max(total, start)
        start = max(start, stop - window.last)
    assert stop is not None
    page = await fetch(start, stop - start, want_count and total is None)
    if page.total is not None:
        total = page.total
    has_next = page.has_more or (total is not None and total > stop)
    return _connection(page.rows[: stop - start], start, has_next, total)


# --- relations -------------------------------------------------------------------------


def for_caller(
    ctx: RequestContext, binding: Binding, options: Mapping[str, Any]
) -> Mapping[str, Any]:
    """A query's options with what the caller's level decides: for a register's events, the
    entities whose events it may read."""
    if not is_events(binding.entity):
        return options
    register = binding.register
    visible = frozenset(
        name for name in register.datamodel.entities if register.entity_level(name) <= ctx.level
    )
    # Written by the gateway as it records: no whole answer of them is kept (no TTL).
    ctx.touched.add(binding.entity.graphql_name)
    return {**options, VISIBLE: visible}


def at_instant(instant: Any) -> Mapping[str, Any]:
    """A query's options for ``registreringstid`` (none when it is now)."""
    return {} if instant is None else {REGISTRATION: instant}


def _valid(
    ctx: RequestContext, binding: Binding, where: Filter | None, instant: Any
) -> Filter | None:
    """``where`` narrowed to the rows valid at ``instant`` (``virkningstid``); an entity
    without declared validity is left as it is, with a notice (once per entity)."""
    valid = valid_at(binding.register, binding.entity, instant)
    if valid is None:
        notice = validity_notice(binding.register, binding.entity)
        if notice not in ctx.notices:
            ctx.notices.append(notice)
        return where
    return valid if where is None else And((where, valid))


def _coerce_key(value: Any, kind: ScalarType) -> Any | None:
    """A join value converted to the target field's type (ids are ints here, text there)."""
    if value is None:
        return None
    if kind in (ScalarType.INT, ScalarType.LONG):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if kind is ScalarType.STRING:
        return value if isinstance(value, str) else str(value)
    return value


def _group_key(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def join_scope(
    binding: Binding, relation: Relation, target: Binding
) -> tuple[tuple[str, str], ...]:
    """The scope of a join inside one register: (source, target) GraphQL names of the
    ``joinScope`` fields both entities have. A scoped join matches only rows with equal
    values there too (a result of one election links to that election's geography)."""
    if relation.source_register != relation.target_register:
        return ()
    theirs = {target.entity.field(n).source: n for n in scope_fields(target)}
    return tuple(
        (name, theirs[source])
        for name in scope_fields(binding)
        if (source := binding.entity.field(name).source) in theirs
        and source not in (relation.source_field, relation.target_field)
    )


def join_key(
    row: Row, binding: Binding, relation: Relation, scope: Sequence[tuple[str, str]]
) -> Any:
    """What a parent row joins on: its SourceField, with its scope values when scoped (None
    when any is missing: no row matches)."""
    value = row.get(binding.entity.by_source[relation.source_field].name)
    if not scope or value is None:
        return value
    parts = (value, *(row.get(name) for name, _ in scope))
    return None if any(p is None for p in parts) else parts


async def load_related(
    ctx: RequestContext,
    target: Binding,
    relation: Relation,
    keys: list[Any],
    where: Filter | None,
    order: Sequence[SortKey],
    fields: frozenset[str],
    selected: int,
    scope: Sequence[tuple[str, str]] = (),
    instant: Any = None,
) -> list[list[Row]]:
    """The target rows of every key (one upstream query for all), charged to the meter as
    rows × ``selected`` (the fields the query selects on them). With a ``scope``, each key
    is a :func:`join_key` tuple and the rows must match its scope values as well."""
    target_field = target.entity.by_source[relation.target_field]
    parts = [None if k is None else (tuple(k) if scope else (k,)) for k in keys]
    coerced = [None if p is None else (_coerce_key(p[0], target_field.type), *p[1:]) for p in parts]
    wanted = sorted({p[0] for p in coerced if p is not None and p[0] is not None}, key=_group_key)
    scope_targets = [t for _, t in scope]
    grouped: dict[tuple[str, ...], list[Row]] = {}
    ctx.touched.add(target.register.name)
    if wanted:
        condition: Filter = Condition(target_field.name, "in", wanted)
        for index, name in enumerate(scope_targets, start=1):
            values = sorted({p[index] for p in coerced if p is not None}, key=_group_key)
            condition = And((condition, Condition(name, "in", values)))
        if where is not None:
            condition = And((condition, where))
        registration, validity = instant if isinstance(instant, tuple) else (instant, None)
        if validity is not None:
            narrowed = _valid(ctx, target, condition, validity)
            assert narrowed is not None
            condition = narrowed
        limit: int | None = None
        if ctx.meter is not None:
            ctx.meter.check()
            # Ask for no more rows than the budget can still pay for (rounded up to a power
            # of two, so that the upstream cache sees few distinct limits): the upstream work
            # stays within twice the budget, and a full answer tells that it was crossed.
            limit = 1 << ctx.meter.rows_left(selected).bit_length()
        query = Query(
            target.entity,
            condition,
            _order(target, order),
            limit=limit,
            fields=fields | {target_field.name, *scope_targets},
            options=at_instant(registration),
        )
        page = await ctx.runtime.sources[target.register.source_key].fetch(query)
        ctx.notices.extend(page.notices)
        if where is None and (limit is None or len(page.rows) < limit):
            ctx.runtime.observed.saw_fanout(relation, len(wanted), len(page.rows))
        if ctx.meter is not None:
            ctx.meter.charge(
                f"{type_name(relation.source_register, relation.source_entity)}.{relation.alias}",
                len(page.rows),
                selected,
            )
        if scope_targets:
            names = (target_field.name, *scope_targets)
            for row in page.rows:
                grouped.setdefault(tuple(_group_key(row.get(n)) for n in names), []).append(row)
        else:  # one column: no generator per row
            name = target_field.name
            for row in page.rows:
                grouped.setdefault((_group_key(row.get(name)),), []).append(row)
    if not scope:
        return [
            grouped.get((_group_key(p[0]),), []) if p is not None and p[0] is not None else []
            for p in coerced
        ]
    return [
        grouped.get(tuple(_group_key(v) for v in p), [])
        if p is not None and p[0] is not None
        else []
        for p in coerced
    ]


def ambiguous(binding: Binding, relation: Relation, matches: int) -> UpstreamInvalidError:
    """The error of a to-one relation that several target rows match: no row is guessed."""
    what = f"{binding.entity.graphql_name}.{relation.alias}"
    return UpstreamInvalidError(
        f"{what}: {matches} rows of {relation.target_entity} match this to-one relation "
        f"(on {relation.target_field}); expected at most one",
        relation=what,
        matches=matches,
    )


def join_requirements(
    binding: Binding, relation: Relation, target: Binding
) -> Iterator[tuple[int, str]]:
    """The levels following ``relation`` needs. Following a relation reveals that the join
    columns are equal: the caller must be allowed to see both, and the target entity."""
    source_field = binding.entity.by_source[relation.source_field].name
    target_field = target.entity.by_source[relation.target_field].name
    what = f"{binding.entity.graphql_name}.{relation.alias}"
    yield target.level, f"{what} ({target.entity.graphql_name})"
    yield binding.field_level(source_field), f"{what} (joins on {source_field})"
    yield target.field_level(target_field), f"{what} (joins on {target_field})"


def check_join(ctx: RequestContext, binding: Binding, relation: Relation, target: Binding) -> None:
    """Deny following ``relation`` unless the caller meets every join requirement."""
    for level, what in join_requirements(binding, relation, target):
        ctx.require(level, what)


async def resolve_one(
    ctx: RequestContext,
    parent: Row,
    binding: Binding,
    relation: Relation,
    target: Binding,
    selection: Selection,
    instant: Any = None,
) -> Row | None:
    """A to-one relation: the target row whose TargetField equals the parent's SourceField."""
    check_join(ctx, binding, relation, target)
    scope = join_scope(binding, relation, target)
    value = join_key(parent, binding, relation, scope)
    if value is None:
        return None
    fields = frozenset(target.source_fields(selection.names, ctx.level))
    selected = len(selection.names)
    loader = ctx.loader(
        ("one", relation, fields, instant),
        lambda keys: load_related(
            ctx, target, relation, keys, None, (), fields, selected, scope, instant
        ),
    )
    rows: list[Row] = await loader.load(value)
    if len(rows) > 1:
        raise ambiguous(binding, relation, len(rows))
    return rows[0] if rows else None


async def resolve_many(
    ctx: RequestContext,
    parent: Row,
    binding: Binding,
    relation: Relation,
    target: Binding,
    args: Mapping[str, Any],
    selection: Selection,
    where: Filter | None,
    order: Sequence[SortKey],
    instant: Any = None,
) -> dict[str, Any]:
    """A to-many relation: a connection over the target rows that point at the parent."""
    check_join(ctx, binding, relation, target)
    target.check(ctx, where, order)
    window = Window.from_args(args, ctx.runtime)
    scope = join_scope(binding, relation, target)
    value = join_key(parent, binding, relation, scope)
    names = node_selection(selection)
    fields = frozenset(target.source_fields(names, ctx.level))
    rows: list[Row] = []
    if value is not None:
        loader = ctx.loader(
            ("many", relation, fields, repr(where), tuple(order), instant),
            lambda keys: load_related(
                ctx, target, relation, keys, where, order, fields, len(names), scope, instant
            ),
        )
        rows = await loader.load(value)
    return window_connection(rows, window)


def window_connection(rows: list[Row], window: Window) -> dict[str, Any]:
    """The connection over ``window`` of all the related rows of one parent."""
    total = len(rows)
    stop = total if window.stop is None else min(window.stop, total)
    start = min(window.start, stop)
    if window.last is not None:
        start = max(start, stop - window.last)
    return _connection(rows[start:stop], start, total > stop, total)


def resolve_guarded(ctx: RequestContext, parent: Row, binding: Binding, name: str) -> Any:
    """A field whose own level is above its entity's."""
    ctx.require(binding.field_level(name), f"{binding.entity.graphql_name}.{name}")
    return parent.get(name)
