"""OData v3 system query options of a collection request, and running them over rows.

Covers ``$filter``, ``$orderby``, ``$select``, ``$top``, ``$skip``, ``$inlinecount`` and
``$format=json``, server-side paging with a page-size cap, and the ``odata.nextLink`` that
continues a capped page. Custom options (names without ``$``) are ignored, as OData allows; any
other ``$`` option, a repeated option or a malformed value raises :class:`QueryOptionError`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from resolvers.odata.replica.expr import (
    ExpressionError,
    JsonValue,
    OrderKey,
    Predicate,
    Row,
    compile_filter,
    kind_of,
    parse_orderby,
    sort_rows,
)

__all__ = [
    "PageResult",
    "QueryOptionError",
    "QueryOptions",
    "execute",
    "next_link",
    "parse_options",
    "parse_query_string",
]

_INT32_MAX: Final = 2**31 - 1
_SUPPORTED: Final = frozenset(
    {"$filter", "$orderby", "$select", "$top", "$skip", "$inlinecount", "$format"}
)
_JSON_FORMATS: Final = frozenset({"json", "application/json"})
# Characters left as they are in a nextLink; everything else (& = + # % space, non-ASCII) is
# percent-encoded so that the link's query reads back to the same values.
_LINK_SAFE: Final = "'(),:/@!*$"


class QueryOptionError(ValueError):
    """A query string or system query option the service answers with 400."""


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """The parsed query options of one collection request."""

    select: tuple[str, ...]
    predicate: Predicate | None = None
    order: tuple[OrderKey, ...] = ()
    top: int | None = None
    skip: int = 0
    inlinecount: bool = False
    repeated: tuple[tuple[str, str], ...] = field(default=())
    """Options a nextLink repeats as they were given (all but ``$top`` and ``$skip``)."""


@dataclass(frozen=True, slots=True)
class PageResult:
    """One response's worth of a collection request."""

    rows: list[dict[str, JsonValue]]
    count: int | None
    """The number of rows matching ``$filter`` when ``$inlinecount=allpages``, else None."""
    next_skip: int | None
    """``$skip`` of the next page when rows remain in the requested window, else None."""


def parse_query_string(raw: bytes) -> list[tuple[str, str]]:
    """Split and decode a raw query string (``+`` is a space, ``%XX`` are UTF-8 bytes).

    Raises:
        QueryOptionError: a name or value is not UTF-8 once decoded.
    """
    pairs: list[tuple[str, str]] = []
    for piece in raw.split(b"&"):
        if piece:
            name, _, value = piece.partition(b"=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(raw: bytes) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryOptionError("query string is not UTF-8") from exc


def parse_options(pairs: Sequence[tuple[str, str]], properties: Mapping[str, str]) -> QueryOptions:
    """Parse the options of a request on an entity set with ``properties`` (name → Edm type).

    Raises:
        QueryOptionError: unknown or repeated ``$`` option, or a malformed value.
    """
    given: dict[str, str] = {}
    for name, value in pairs:
        if not name.startswith("$"):
            continue
        if name not in _SUPPORTED:
            raise QueryOptionError(f"unsupported query option {name}")
        if name in given:
            raise QueryOptionError(f"query option {name} given twice")
        given[name] = value
    kinds = {name: kind_of(edm) for name, edm in properties.items()}
    try:
        predicate = compile_filter(given["$filter"], kinds) if "$filter" in given else None
        order = tuple(parse_orderby(given["$orderby"], kinds)) if "$orderby" in given else ()
    except ExpressionError as exc:
        raise QueryOptionError(str(exc)) from exc
    _check_format(given.get("$format"))
    top = given.get("$top")
    return QueryOptions(
        select=_parse_select(given.get("$select"), properties),
        predicate=predicate,
        order=order,
        top=None if top is None else _parse_count(top, "$top"),
        skip=_parse_count(given.get("$skip", "0"), "$skip"),
        inlinecount=_parse_inlinecount(given.get("$inlinecount")),
        repeated=tuple((n, v) for n, v in pairs if n not in ("$top", "$skip")),
    )


def _parse_count(text: str, option: str) -> int:
    if not text or len(text) > 10 or not all("0" <= c <= "9" for c in text):
        raise QueryOptionError(f"{option} must be a non-negative integer")
    value = int(text)
    if value > _INT32_MAX:
        raise QueryOptionError(f"{option} is out of range")
    return value


def _parse_inlinecount(text: str | None) -> bool:
    if text is None or text == "none":
        return False
    if text == "allpages":
        return True
    raise QueryOptionError("$inlinecount must be allpages or none")


def _check_format(text: str | None) -> None:
    if text is not None and text.strip().lower() not in _JSON_FORMATS:
        raise QueryOptionError("only $format=json is served")


def _parse_select(text: str | None, properties: Mapping[str, str]) -> tuple[str, ...]:
    if text is None:
        return tuple(properties)
    wanted = {item.strip() for item in text.split(",")}
    if "*" in wanted:
        wanted.discard("*")
        wanted.update(properties)
    unknown = wanted - properties.keys()
    if unknown:
        raise QueryOptionError(f"$select names no property: {sorted(unknown)}")
    # Properties come out in $metadata order whatever the order of $select.
    return tuple(name for name in properties if name in wanted)


_MATCHES: OrderedDict[tuple[int, str, tuple[OrderKey, ...]], list[Row]] = OrderedDict()


def forget_matches() -> None:
    """The data changed: forget every remembered match."""
    _MATCHES.clear()


def _matching(rows: Sequence[Row], options: QueryOptions) -> Sequence[Row]:
    """The filtered, ordered rows; remembered per (rows, $filter, $orderby) until the data
    changes (:func:`forget_matches`), so that paging through a large result does not redo the
    work per page."""
    if options.predicate is None and not options.order:
        return rows
    text = next((v for k, v in options.repeated if k == "$filter"), "")
    key = (id(rows), text, options.order)
    found = _MATCHES.get(key)
    if found is not None:
        _MATCHES.move_to_end(key)
        return found
    matching: Sequence[Row] = rows
    if options.predicate is not None:
        predicate = options.predicate
        matching = [row for row in rows if predicate(row)]
    result = sort_rows(matching, options.order) if options.order else list(matching)
    if options.predicate is None or text:
        _MATCHES[key] = result
        if len(_MATCHES) > 64:
            _MATCHES.popitem(last=False)
    return result


def execute(rows: Sequence[Row], options: QueryOptions, page_size: int) -> PageResult:
    """Filter, order, window and cap ``rows`` (given in ascending ``id`` order)."""
    matching = _matching(rows, options)
    end = len(matching) if options.top is None else options.skip + options.top
    window = matching[options.skip : end]
    page = window[:page_size]
    select = options.select
    return PageResult(
        rows=[{name: row[name] for name in select} for row in page],
        count=len(matching) if options.inlinecount else None,
        next_skip=options.skip + page_size if len(window) > page_size else None,
    )


def next_link(collection_url: str, options: QueryOptions, result: PageResult) -> str | None:
    """The absolute URL of the next page, or None when the window is exhausted.

    It repeats the request's options, with ``$top`` reduced by the rows returned (when a
    ``$top`` was given) and ``$skip`` advanced past them.
    """
    if result.next_skip is None:
        return None
    pairs = list(options.repeated)
    if options.top is not None:
        pairs.append(("$top", str(options.top - len(result.rows))))
    pairs.append(("$skip", str(result.next_skip)))
    query = "&".join(f"{quote(n, safe='$')}={quote(v, safe=_LINK_SAFE)}" for n, v in pairs)
    return f"{collection_url}?{query}"
