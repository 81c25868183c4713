"""OData v3 JSON upstreams (Folketingets åbne data).

What the upstream can evaluate is pushed down (``$filter``, ``$orderby``, ``$select``,
``$skip``/``$top``, ``$inlinecount``); what it cannot (a filter function it lacks, a filter
too long for one URL) is evaluated here on the rows it returns. Values placed in ``$filter``
are literals, escaped by OData's rules and then percent-encoded: data never becomes syntax.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import string
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from gateway.history.periods import HISTORY_ROWS, Asked
from gateway.model.datamodel import Entity, Field, Register, ScalarType
from gateway.model.errors import (
    BadUserInputError,
    UpstreamInvalidError,
    UpstreamUnavailableError,
)
from gateway.model.filters import apply_in_memory
from gateway.model.keys import key_order
from gateway.model.query import (
    And,
    Condition,
    Filter,
    Or,
    Page,
    Query,
    Row,
    SortKey,
    conjuncts,
    filter_fields,
)
from gateway.sources import upstream_budget
from gateway.sources.port import REGISTRATION, Services, Source
from resolvers.odata.history import RowHistory
from resolvers.odata.options import parse as parse_options
from resolvers.transport import Reply, Transport

__all__ = ["ODataSource", "build_url", "literal", "translate"]

log = logging.getLogger("resolvers.odata.adapter")

_COMPARE = {"eq": "eq", "neq": "ne", "gt": "gt", "gte": "ge", "lt": "lt", "lte": "le"}
_FUNCTIONS = {
    "contains": ("substringof", "substringof({value},{field})"),
    "startsWith": ("startswith", "startswith({field},{value})"),
    "endsWith": ("endswith", "endswith({field},{value})"),
}


def literal(value: Any, field: Field, zone: dt.tzinfo = dt.UTC) -> str:
    """``value`` as an OData v3 literal of ``field``'s type (date-times on ``zone``'s clock)."""
    if value is None:
        return "null"
    kind = field.type
    if kind is ScalarType.BOOLEAN:
        return "true" if value else "false"
    if kind in (ScalarType.INT, ScalarType.LONG):
        number = int(value)
        return f"{number}L" if kind is ScalarType.LONG else str(number)
    if kind is ScalarType.FLOAT:
        return f"{float(value)!r}d"
    if kind in (ScalarType.DATETIME, ScalarType.DATE):
        return f"datetime'{_wall_clock(value, zone)}'"
    text = str(value).replace("'", "''")
    return f"'{text}'"


def _wall_clock(value: Any, zone: dt.tzinfo) -> str:
    # The upstream's DateTime values carry no offset (they are wall-clock times of the
    # register's ``timeZone`` option): an aware value from a caller is converted to that wall
    # clock before comparing.
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds")


def translate(
    where: Filter, entity: Entity, functions: frozenset[str], zone: dt.tzinfo = dt.UTC
) -> str | None:
    """``where`` as an OData ``$filter`` expression, or None if the upstream cannot evaluate it.

    ``functions`` are the filter functions the upstream has; date-times are compared on
    ``zone``'s wall clock (the register's ``timeZone`` option).
    """
    if isinstance(where, And | Or):
        parts = [translate(item, entity, functions, zone) for item in where.items]
        if any(p is None for p in parts) or not parts:
            return None
        joiner = " and " if isinstance(where, And) else " or "
        return "(" + joiner.join(p for p in parts if p is not None) + ")"
    field = entity.field(where.field)
    name = field.source
    op, value = where.op, where.value
    if op in _COMPARE:
        return f"{name} {_COMPARE[op]} {literal(value, field, zone)}"
    if op in ("in", "nin"):
        values = list(dict.fromkeys(value))
        if not values:
            # Nothing is in the empty set; everything is outside it.
            key = entity.field(entity.key[0]).source
            return f"{key} eq null" if op == "in" else f"{key} ne null"
        word, joiner = ("eq", " or ") if op == "in" else ("ne", " and ")
        return "(" + joiner.join(f"{name} {word} {literal(v, field, zone)}" for v in values) + ")"
    if op in _FUNCTIONS:
        function, template = _FUNCTIONS[op]
        if function not in functions or field.type is not ScalarType.STRING:
            return None
        call = template.format(field=name, value=literal(str(value), field, zone))
        return f"{call} eq true"
    return None


def _orderby(order: Sequence[SortKey], entity: Entity) -> str:
    return ",".join(entity.field(k.field).source + (" desc" if k.descending else "") for k in order)


def build_url(root: str, entity: Entity, params: Mapping[str, str]) -> str:
    """The request URL: entity set and option values percent-encoded (UTF-8)."""
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    path = root + quote(entity.name, safe="")
    return f"{path}?{query}" if query else path


@dataclass(slots=True)
class _Plan:
    """How a query is sent: the pushed filter, and whether the gateway finishes the work."""

    pushed: list[str]
    residual: list[Filter]
    split: Condition | None  # an "in" too long for one URL, sent in chunks
    chunks: list[list[Any]] = dataclasses.field(default_factory=list)  # its values, per request


# What "$skip", "$top" and "$inlinecount" can add to a URL.
_WINDOW_OPTIONS = "&$skip=2147483647&$top=2147483647&$inlinecount=allpages&$filter="
# Less room than this for a filter is a misconfiguration; it is not refused per query.
_MIN_FILTER = 200


# str.translate table deleting the characters a URL carries as they are.
_UNRESERVED = dict.fromkeys(map(ord, string.ascii_letters + string.digits + "_.-~"))


def _cost(text: str) -> int:
    """Bytes of ``text`` in a URL: UTF-8, percent-encoded (a Danish letter costs 6).

    ASCII text is counted without encoding it (each reserved character costs 3 bytes): an
    ``in`` list of thousands of values is measured value by value.
    """
    if text.isascii():
        return len(text) + 2 * len(text.translate(_UNRESERVED))
    return len(quote(text, safe=""))


@dataclass(frozen=True, slots=True)
class _Room:
    """The longest ``$filter``: ``chars`` as written and ``bytes`` as sent."""

    chars: int
    bytes: int

    @staticmethod
    def cost(text: str) -> int:
        return _cost(text)

    def fits(self, texts: Sequence[str]) -> bool:
        joined = " and ".join(texts)
        return len(joined) <= self.chars and _cost(joined) <= self.bytes

    def half(self) -> _Room:
        return _Room(self.chars // 2, self.bytes // 2)


class ODataSource(Source):
    """An OData v3 service answering ``application/json`` (JSON light)."""

    kind = "odata"
    keeps_history = True
    records_rows = True

    def __init__(self, register: Register, options: Mapping[str, Any], services: Services) -> None:
        super().__init__(register, options, services)
        self.settings = parse_options(options)
        self.root = self.settings.root
        self.ttl = self.settings.ttl
        self.page_size = self.settings.page_size
        self.functions = self.settings.filter_functions
        self.zone = self.settings.time_zone
        self.max_filter = self.settings.max_filter_length
        # Bytes of a whole request URL, percent-encoded: under common server limits (4096).
        self.max_url = self.settings.max_url_length
        self.reserve_rows = self.settings.reserve_rows
        self.transport = Transport(
            self,
            headers={"Accept": "application/json"},
            max_connections=16,
            max_keepalive=8,
        )
        # The request URL (and row bound) of each recent query the upstream answers whole,
        # by the query's canonical form: a repeated query builds no URL (least recently
        # planned first out).
        self._windows: dict[Hashable, tuple[str, int | None, Entity]] = {}
        self.history = RowHistory(register, services.history, self.settings.change_field, self.zone)

    async def start(self) -> None:
        await self.transport.start()
        await self.history.start()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- planning ---------------------------------------------------------------------

    def _plan(self, query: Query) -> _Plan:
        entity = query.entity
        pushed: list[tuple[Filter, str]] = []
        residual: list[Filter] = []
        for part in conjuncts(query.where):
            text = translate(part, entity, self.functions, self.zone)
            if text is None:
                residual.append(part)
            else:
                pushed.append((part, text))
        room = self._room(query)
        if room.fits([t for _, t in pushed]):
            return _Plan([t for _, t in pushed], residual, None)
        # Too long for one URL. The longest "in" list is sent in chunks (one request each);
        # what else does not fit is narrowed upstream by a shorter condition it implies, and
        # evaluated here in full.
        split = max(
            (
                (p, t)
                for p, t in pushed
                if isinstance(p, Condition) and p.op == "in" and not room.half().fits([t])
            ),
            key=lambda pair: room.cost(pair[1]),
            default=None,
        )
        fixed = [pair for pair in pushed if pair is not split]
        share = room.half() if split is not None else room
        texts: list[str] = []
        for part, text in sorted(fixed, key=lambda pair: room.cost(pair[1])):
            if share.fits([*texts, text]):
                texts.append(text)
                continue
            residual.append(part)
            shorter = self._implied(part, entity, share, texts)
            if shorter is not None:
                texts.append(shorter)
            elif isinstance(part, Condition):
                self._refuse_unless_local(part, entity, text, share)
        if split is None:
            return _Plan(texts, residual, None)
        assert isinstance(split[0], Condition)
        return _Plan(texts, residual, split[0], self._chunks(split[0], entity, room, texts))

    def _chunks(
        self, condition: Condition, entity: Entity, room: _Room, texts: list[str]
    ) -> list[list[Any]]:
        """The values of ``condition`` (an "in") in chunks whose URLs are short enough."""
        field = entity.field(condition.field)
        fixed = " and ".join(texts) + " and " if texts else ""
        chars = room.chars - len(fixed) - 2  # the chunk's parentheses
        size = room.bytes - _cost(fixed) - 6
        chunks: list[list[Any]] = [[]]
        used_chars = used_bytes = 0
        for value in dict.fromkeys(condition.value):
            piece = f"{field.source} eq {literal(value, field, self.zone)}"
            piece_chars, piece_bytes = len(piece) + 4, _cost(piece) + 8  # and " or "
            if piece_chars - 4 > chars or piece_bytes - 8 > size:
                raise BadUserInputError(
                    f"where: a value of {condition.field}.in is {len(str(value))} characters"
                    f" ({piece_bytes - 8} bytes in the request URL); the upstream accepts at"
                    f" most {max(size, 0)} bytes of filter: use shorter values",
                    argument=f"where.{condition.field}.in",
                    length=len(str(value)),
                    limit=max(size, 0),
                )
            if chunks[-1] and (used_chars + piece_chars > chars or used_bytes + piece_bytes > size):
                chunks.append([])
                used_chars = used_bytes = 0
            chunks[-1].append(value)
            used_chars += piece_chars
            used_bytes += piece_bytes
        return chunks

    def _room(self, query: Query) -> _Room:
        """How long ``$filter`` may be: characters before, bytes after percent-encoding."""
        entity = query.entity
        # The longest the other options can be: every field selected, the order, a window.
        widest = {"$select": ",".join(f.source for f in entity.fields)}
        if query.order:
            widest["$orderby"] = _orderby(query.order, entity)
        base = len(build_url(self.root, entity, widest)) + len(_WINDOW_OPTIONS)
        return _Room(self.max_filter, max(self.max_url - base, _MIN_FILTER))

    def _implied(self, part: Filter, entity: Entity, share: _Room, texts: list[str]) -> str | None:
        """A shorter pushed condition that ``part`` implies and that fits next to ``texts``."""
        if not isinstance(part, Condition):
            return None
        field = entity.field(part.field)
        op, value = part.op, part.value
        if op == "nin":
            # Outside a part of the set is implied by outside all of it: the longest prefix
            # of the values that fits.
            values = list(dict.fromkeys(value))

            def outside(count: int) -> str | None:
                return translate(
                    Condition(part.field, "nin", tuple(values[:count])),
                    entity,
                    self.functions,
                    self.zone,
                )

            return self._longest(outside, len(values), share, texts)
        if field.type is not ScalarType.STRING or not isinstance(value, str):
            return None
        if op == "eq" and "startswith" in self.functions:
            op = "startsWith"
        if op not in ("contains", "startsWith", "endsWith"):
            return None

        def text_of(length: int) -> str | None:
            piece = value[len(value) - length :] if op == "endsWith" else value[:length]
            return translate(Condition(part.field, op, piece), entity, self.functions, self.zone)

        # The longest prefix (suffix for endsWith) of the value that still fits.
        return self._longest(text_of, len(value), share, texts)

    @staticmethod
    def _longest(
        text_of: Callable[[int], str | None], most: int, share: _Room, texts: list[str]
    ) -> str | None:
        """``text_of(n)`` for the largest n in 1..most that fits next to ``texts``, if any."""
        low, high = 0, most
        while low < high:
            middle = (low + high + 1) // 2
            candidate = text_of(middle)
            if candidate is not None and share.fits([*texts, candidate]):
                low = middle
            else:
                high = middle - 1
        return text_of(low) if low > 0 else None

    def _refuse_unless_local(self, part: Condition, entity: Entity, text: str, room: _Room) -> None:
        field = entity.field(part.field)
        if part.op in ("gt", "gte", "lt", "lte") and field.type is ScalarType.STRING:
            # The upstream's collation orders text; the gateway cannot repeat it faithfully.
            raise BadUserInputError(
                f"where: the filter {part.field}.{part.op} is {len(str(part.value))} characters"
                f" ({room.cost(text)} bytes in the request URL); the upstream accepts at most"
                f" {room.bytes} bytes of filter: use a shorter value",
                argument=f"where.{part.field}.{part.op}",
                length=len(str(part.value)),
                limit=room.bytes,
            )

    def _params(self, query: Query, pushed: list[str]) -> dict[str, str]:
        params: dict[str, str] = {}
        if pushed:
            params["$filter"] = " and ".join(pushed)
        if query.fields:
            names = {
                query.entity.field(n).source for n in query.fields if n in query.entity.by_name
            }
            # $metadata order keeps URLs (and so cache keys) stable.
            params["$select"] = ",".join(f.source for f in query.entity.fields if f.source in names)
        if query.order:
            params["$orderby"] = _orderby(query.order, query.entity)
        return params

    # -- fetching ---------------------------------------------------------------------

    @property
    def data_epoch(self) -> int:
        return self.history.epoch

    async def read_for_history(self, entity: Entity, since: dt.datetime | None) -> int:
        """Read ``entity`` whole (``since`` None), or its rows updated after ``since`` (by the
        ``changeField``; whole without one), past the cache: they are recorded."""
        change = self.history.change_name(entity)
        where = None if since is None or change is None else Condition(change, "gt", since)
        query = Query(entity, where, key_order(entity, ()), options={"cache": False})
        page = await self.fetch(query)
        return len(page.rows)

    async def fetch(self, query: Query) -> Page:
        """Answer ``query`` (at its ``registreringstid`` from the history, see
        :mod:`resolvers.odata.history`); whole rows read from the upstream are recorded (as
        they arrive: an answer from the cache was recorded when it was read), and rows known
        to be deleted upstream are left out."""
        if query.options:
            instant = query.options.get(REGISTRATION)
            if instant is not None:
                return await self.history.at(query, instant)
            asked = query.options.get(HISTORY_ROWS)
            if isinstance(asked, Asked):
                return await self.history.periods(query, asked)
        keep = query.options.get("cache", True) is not False
        key = _canonical(query)

        known = self._windows.get(key) if key is not None else None
        if known is not None and known[2] is query.entity:
            # A query seen before that the upstream answers whole: its request URL is known.
            return await self._pages(query, known[0], keep, rows_at_most=known[1])
        plan = self._plan(query)
        if not plan.residual and plan.split is None:
            bound = _row_bound(query.where, query.entity)
            url = self._url(query, self._params(query, plan.pushed))
            if key is not None:
                self._remember(key, (url, bound, query.entity))
            return await self._pages(query, url, keep, rows_at_most=bound)
        # The gateway finishes the work: fetch every row the upstream can narrow down to.
        needed = query.fields
        if needed:
            needed = needed | {k.field for k in query.order}
            for part in plan.residual:
                needed = needed | filter_fields(part)
        everything = Query(query.entity, None, query.order, 0, None, needed, False, query.options)
        if plan.split is None:
            params = self._params(everything, plan.pushed)
            bound = _row_bound(query.where, query.entity)
            rows = (await self._window(everything, params, bound)).rows
        else:
            rows = await self._chunked(everything, plan)
        remaining = And(tuple(plan.residual)) if plan.residual else None
        page = (
            apply_in_memory(rows, query, where=remaining)
            if remaining
            else apply_in_memory(
                rows, Query(query.entity, None, query.order, query.offset, query.limit)
            )
        )
        if not query.count:
            page.total = None
        return page

    async def _chunked(self, query: Query, plan: _Plan) -> list[Row]:
        assert plan.split is not None
        field = query.entity.field(plan.split.field)
        chunks = plan.chunks
        # A request per chunk at least (per page of it, on the key), known before the first.
        on_key = list(query.entity.key) == [field.name]
        pages = [self._foreseen(None, len(chunk) if on_key else None) for chunk in chunks]
        upstream_budget.spend(
            sum(pages),
            f"{self.register.name} {query.entity.name}: {len(dict.fromkeys(plan.split.value))}"
            f" values of {plan.split.field}.in in {len(chunks)} requests",
        )
        answers = await asyncio.gather(
            *(
                self._pages(
                    query,
                    self._url(
                        query,
                        self._params(
                            query,
                            [*plan.pushed, self._in_filter(query.entity, field, chunk)],
                        ),
                    ),
                    query.options.get("cache", True) is not False,
                    prepaid=paid,
                )
                for chunk, paid in zip(chunks, pages, strict=True)
            )
        )
        seen: set[tuple[Any, ...]] = set()
        rows: list[Row] = []
        for page in answers:
            for row in page.rows:
                identity = tuple(row.get(k) for k in query.entity.key)
                if identity not in seen:
                    seen.add(identity)
                    rows.append(row)
        return rows

    def _in_filter(self, entity: Entity, field: Field, values: list[Any]) -> str:
        text = translate(
            Condition(field.name, "in", tuple(values)), entity, self.functions, self.zone
        )
        assert text is not None  # "in" always translates
        return text

    async def _window(
        self, query: Query, params: dict[str, str], rows_at_most: int | None = None
    ) -> Page:
        """Rows [offset, offset+limit), following ``odata.nextLink`` across the page cap."""
        keep = query.options.get("cache", True) is not False
        return await self._pages(query, self._url(query, params), keep, rows_at_most=rows_at_most)

    def _url(self, query: Query, params: dict[str, str]) -> str:
        """The first request of ``query``'s window: ``params`` with the window's options."""
        if query.offset:
            params["$skip"] = str(query.offset)
        if query.limit is not None:
            # One row more than asked tells whether a next page exists.
            params["$top"] = str(query.limit + 1 if query.limit else 0)
        if query.count:
            params["$inlinecount"] = "allpages"
        return build_url(self.root, query.entity, params)

    def _remember(self, key: Hashable, window: tuple[str, int | None, Entity]) -> None:
        """Keep ``window`` (a request URL and row bound) for ``key``; the oldest goes first."""
        windows = self._windows
        if len(windows) >= _WINDOWS_KEPT:
            del windows[next(iter(windows))]
        windows[key] = window

    def _foreseen(self, limit: int | None, rows_at_most: int | None) -> int:
        """The requests a window will take if the upstream has the rows (at least one).

        Known from the window's size (``first``) up to ``reserveRows`` rows, the largest a
        caller may ask, or from the filter (at most one row per key asked for). A larger
        window without such a bound (a relation's row cap) is paid page by page.
        """
        sizes = [n for n in (rows_at_most,) if n is not None]
        if limit is not None and (limit <= self.reserve_rows or sizes):
            sizes.append(limit)
        if not sizes:
            return 1
        return max(1, -(-min(sizes) // self.page_size))

    async def _pages(
        self,
        query: Query,
        first_url: str,
        keep: bool,
        *,
        prepaid: int = 0,
        rows_at_most: int | None = None,
    ) -> Page:
        """The window's rows; ``prepaid`` of its requests were already spent by the caller."""
        what = f"{self.register.name} {query.entity.name}: pages of {self.page_size} rows"
        foreseen = self._foreseen(query.limit, rows_at_most)
        if foreseen > prepaid:
            size = f"first: {query.limit}" if query.limit is not None else "every row"
            upstream_budget.spend(foreseen - prepaid, f"{what}, {size}")
            prepaid = foreseen
        url: str | None = first_url
        rows: list[Row] = []
        total: int | None = None
        has_more = False
        while url is not None:
            if prepaid > 0:
                prepaid -= 1
            else:
                # A page beyond what could be foreseen (an unbounded window): spent as it
                # comes, so the query stops before the request that would exceed the budget.
                upstream_budget.spend(1, f"{what}, following odata.nextLink")
            answer = await self._get(url, query.entity, keep, query)
            if total is None and query.count:
                total = _count(answer.count)
            rows.extend(answer.rows)
            url = answer.next_link
            if query.limit is not None and len(rows) >= query.limit:
                has_more = len(rows) > query.limit or url is not None
                break
        if query.limit == 0 and total is not None:
            has_more = total > query.offset
        window = rows if query.limit is None else rows[: query.limit]
        page = Page(rows=window, has_more=has_more, total=total)
        # Rows known to be deleted upstream are left out (a cached page may hold them).
        return self.history.visible(query.entity, page) if self.history.deleted else page

    def _next_link(self, document: Mapping[str, Any]) -> str | None:
        link = document.get("odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str):
            raise UpstreamInvalidError(f"{self.register.name}: odata.nextLink is not a URL")
        # Follow links only to the configured service: a hostile upstream must not make us
        # fetch from elsewhere.
        own, other = urlsplit(self.root), urlsplit(link)
        if (own.scheme, own.netloc) != (other.scheme, other.netloc) or not other.path.startswith(
            own.path
        ):
            raise UpstreamInvalidError(
                f"{self.register.name}: odata.nextLink points outside the service: {link!r}"
            )
        return link

    def _rows(self, document: Mapping[str, Any], entity: Entity) -> list[Row]:
        values = document.get("value")
        if not isinstance(values, list):
            raise UpstreamInvalidError(f"{self.register.name}: the response has no value array")
        by_source = entity.by_source
        out: list[Row] = []
        for item in values:
            if not isinstance(item, dict):
                raise UpstreamInvalidError(f"{self.register.name}: a row is not an object")
            row: Row = {}
            for key, value in item.items():
                field = by_source.get(key)
                if field is not None:
                    row[field.name] = _coerce(value, field)
            out.append(row)
        return out

    async def _get(
        self, url: str, entity: Entity, keep: bool = True, query: Query | None = None
    ) -> _Answer:
        async def attempt() -> _Answer:
            try:
                reply = await self.transport.attempt(url)
            except UpstreamUnavailableError as exc:
                if exc.extensions.get("status") == 404:
                    raise UpstreamUnavailableError(
                        f"{self.register.name}: the upstream does not serve this entity set (404)",
                        status=404,
                    ) from exc
                raise
            document = self._document(reply)
            return _Answer(
                self._rows(document, entity),
                document.get("odata.count"),
                self._next_link(document),
            )

        async def download() -> _Answer:
            answer = await self.guard.run(attempt)
            history = self.history
            # Whole rows read from the upstream are recorded (only there: a cached answer
            # was recorded when it was read).
            if history.store is not None and answer.rows and query and history.complete(query):
                history.record(entity, answer.rows)
            return answer

        if not keep:
            return await download()
        # Kept converted: a hit costs no renaming or coercion. (The key's prefix names the
        # shape of the value, so entries of an older shape are never read as this one.)
        return await self.services.cache.get_or_fetch(
            f"odata-rows:{url}", download, self.ttl, **self.cache_windows()
        )

    def _document(self, response: Reply) -> dict[str, Any]:
        name = self.register.name
        try:
            document = json.loads(response.content)
        except ValueError:
            raise UpstreamInvalidError(f"{name}: the upstream's answer is not JSON") from None
        if not isinstance(document, dict):
            raise UpstreamInvalidError(f"{name}: the answer is not a JSON object")
        return document


# Distinct queries whose request URL is kept per source.
_WINDOWS_KEPT = 1024
# Values a canonical form carries as they are (their type is part of the form).
_PLAIN = (str, int, float, bool, type(None), dt.datetime, dt.date, dt.time)


def _canonical(query: Query) -> Hashable | None:
    """What decides ``query``'s request URLs, as a hashable value; None if a value is of a
    type with no canonical form here (the URL is then built every time).

    Every part of the query but its options is in it, and each value with its type (``1``,
    ``1.0`` and ``True`` are equal in Python but are different literals).
    """
    where = _canonical_filter(query.where) if query.where is not None else None
    if where is _UNKNOWN:
        return None
    return (
        query.entity.register,
        query.entity.name,
        where,
        query.order,
        (type(query.offset), query.offset),
        (type(query.limit), query.limit),
        query.fields,
        query.count,
    )


_UNKNOWN: Any = object()


def _canonical_value(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        # -0.0 == 0.0, but they are written differently.
        return (kind, repr(value))
    if kind in _PLAIN:
        if isinstance(value, dt.datetime | dt.time):
            # Equal instants on different clocks are different literals.
            return (kind, value, value.tzinfo, value.utcoffset())
        return (kind, value)
    if kind is tuple or kind is list:
        items = tuple(_canonical_value(v) for v in value)
        return _UNKNOWN if any(item is _UNKNOWN for item in items) else (kind, items)
    return _UNKNOWN


def _canonical_filter(where: Filter) -> Any:
    if isinstance(where, Condition):
        value = _canonical_value(where.value)
        return _UNKNOWN if value is _UNKNOWN else ("c", where.field, where.op, value)
    items = tuple(_canonical_filter(item) for item in where.items)
    if any(item is _UNKNOWN for item in items):
        return _UNKNOWN
    return ("and" if isinstance(where, And) else "or", items)


class _Answer(NamedTuple):
    """One upstream response as the cache keeps it: its rows already converted."""

    rows: list[Row]
    count: Any  # ``odata.count`` as sent (a string in OData v3), None when absent
    next_link: str | None


def _row_bound(where: Filter | None, entity: Entity) -> int | None:
    """The most rows ``where`` can match, if its top level fixes the (single) key."""
    if len(entity.key) != 1:
        return None
    key = entity.key[0]
    bounds = [
        1 if part.op == "eq" else len(set(part.value))
        for part in conjuncts(where)
        if isinstance(part, Condition) and part.field == key and part.op in ("eq", "in")
    ]
    return min(bounds, default=None)


def _count(raw: Any) -> int:
    try:
        # OData v3 writes the count as a string.
        return int(raw)
    except (TypeError, ValueError):
        raise UpstreamInvalidError(f"odata.count is not a number: {raw!r}") from None


def _coerce(value: Any, field: Field) -> Any:
    if value is None:
        return None
    kind = field.type
    if kind in (ScalarType.INT, ScalarType.LONG) and isinstance(value, str):
        # Edm.Int64 may be written as a string (IEEE754Compatible).
        try:
            return int(value)
        except ValueError:
            raise UpstreamInvalidError(f"{field.source}: {value!r} is not an integer") from None
    return value
