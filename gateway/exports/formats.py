"""The file formats of the exports: CSV (RFC 4180), NDJSON and Parquet, written page by page.

An :class:`Encoder` turns pages of rows into bytes as they arrive: ``begin()`` once,
``page(rows)`` per page, ``end()`` once. None of them keeps rows after returning, so an
export holds one page at a time whatever its length.

Values are written as the GraphQL API serves them:

- CSV: a header row of GraphQL field names, ``CRLF`` line ends, fields quoted when they hold
  ``"`` ``,`` CR or LF (quotes doubled). ``null`` is an empty field; empty text is ``""``, so
  the two stay distinguishable. Booleans are ``true``/``false``, dates and date-times ISO 8601.
- NDJSON: one JSON object per row, every column present (``null`` included), nothing else.
- Parquet: one row group per page. ``String`` → string, ``Int`` → int32, ``Long`` → int64,
  ``Float`` → double, ``Boolean`` → bool, ``Date`` → date32, ``DateTime`` → timestamp
  (microseconds, UTC: ``timestamp[us, tz=UTC]``, read as zone-aware by pandas, polars and
  pyarrow). A value with an offset is converted to UTC; a wall-clock value without one is
  read in the register's time zone (``timeZone`` in its ``Source.json``, UTC when it names
  none). A value that is not an ISO 8601 date-time cannot be written (the export fails
  rather than change it). Each column's metadata names its GraphQL type and source name;
  the file's key-value metadata names register, rc, entity and the attribution the
  upstream's terms ask for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gateway.model.datamodel import Field, ScalarType
from gateway.model.query import Row
from gateway.model.validity import utc_instant

__all__ = [
    "ENCODING_ERRORS",
    "FORMATS",
    "TIMESTAMP",
    "CsvEncoder",
    "Encoder",
    "EncoderFactory",
    "NdjsonEncoder",
    "ParquetEncoder",
    "csv_field",
    "utc_moment",
]


# What writing a value the format cannot hold raises (pyarrow's errors derive from these
# or from ArrowException; orjson's from TypeError).
ENCODING_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    OverflowError,
    pa.ArrowException,
)


class Encoder(Protocol):
    """Writes one export, page by page."""

    def begin(self) -> bytes:
        """What comes before the first row (a header)."""

    def page(self, rows: Sequence[Row]) -> bytes:
        """The bytes for ``rows``."""

    def end(self) -> bytes:
        """What comes after the last row (a footer)."""


# --- CSV ---------------------------------------------------------------------------------

_NEEDS_QUOTES = frozenset('",\r\n')


def _text(value: str) -> str:
    if value == "" or not _NEEDS_QUOTES.isdisjoint(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_field(value: Any) -> str:
    """One CSV field (RFC 4180) for a value as the gateway serves it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return _text(str(value))


class CsvEncoder:
    """RFC 4180 CSV with a header row of GraphQL field names."""

    media_type = "text/csv; charset=utf-8; header=present"

    def __init__(self, columns: Sequence[Field]) -> None:
        self.names = [f.name for f in columns]

    def begin(self) -> bytes:
        return (",".join(_text(n) for n in self.names) + "\r\n").encode("utf-8")

    def page(self, rows: Sequence[Row]) -> bytes:
        names = self.names
        lines = [",".join([csv_field(row.get(n)) for n in names]) for row in rows]
        if not lines:
            return b""
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def end(self) -> bytes:
        return b""


# --- NDJSON ------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class NdjsonEncoder:
    """Newline-delimited JSON: one object per row."""

    media_type = "application/x-ndjson"

    def __init__(self, columns: Sequence[Field]) -> None:
        self.names = [f.name for f in columns]

    def begin(self) -> bytes:
        return b""

    def page(self, rows: Sequence[Row]) -> bytes:
        names = self.names
        option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE
        return b"".join(
            orjson.dumps({n: row.get(n) for n in names}, default=_json_default, option=option)
            for row in rows
        )

    def end(self) -> bytes:
        return b""


# --- Parquet -----------------------------------------------------------------------------


def _date(value: Any) -> Any:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def utc_moment(value: Any, zone: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """A served ``DateTime`` as an aware UTC datetime; wall-clock values are read in ``zone``.

    ValueError for a value that is not an ISO 8601 date-time.
    """
    return utc_instant(value, zone)


TIMESTAMP = pa.timestamp("us", tz="UTC")

_ARROW: Mapping[ScalarType, tuple[Any, Callable[[Any], Any] | None]] = {
    ScalarType.STRING: (pa.string(), None),
    ScalarType.INT: (pa.int32(), None),
    ScalarType.LONG: (pa.int64(), None),
    ScalarType.FLOAT: (pa.float64(), None),
    ScalarType.BOOLEAN: (pa.bool_(), None),
    ScalarType.DATE: (pa.date32(), _date),
    ScalarType.DATETIME: (TIMESTAMP, None),  # converted with the register's zone
}


class _Sink:
    """A write-only file for the Parquet writer; what it got is taken out after each page."""

    closed = False

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


class ParquetEncoder:
    """Parquet, one row group per page, written to the response as each group is done."""

    media_type = "application/vnd.apache.parquet"

    def __init__(
        self,
        columns: Sequence[Field],
        metadata: Mapping[str, str] | None = None,
        zone: dt.tzinfo = dt.UTC,
    ) -> None:
        self.columns = list(columns)
        self.zone = zone
        self.schema = pa.schema(
            [
                pa.field(
                    f.name,
                    _ARROW[f.type][0],
                    nullable=True,
                    metadata={"graphql_type": f.type.value, "source_name": f.source},
                )
                for f in self.columns
            ],
            metadata=dict(metadata or {}),
        )
        self._sink = _Sink()
        self._writer = pq.ParquetWriter(self._sink, self.schema)

    def begin(self) -> bytes:
        return self._sink.take()

    def page(self, rows: Sequence[Row]) -> bytes:
        if not rows:
            return b""
        arrays = []
        for f in self.columns:
            kind, convert = _ARROW[f.type]
            values = [row.get(f.name) for row in rows]
            if f.type is ScalarType.DATETIME:
                zone = self.zone
                values = [utc_moment(v, zone) for v in values]
            elif convert is not None:
                values = [convert(v) for v in values]
            arrays.append(pa.array(values, type=kind))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        return self._sink.take()

    def end(self) -> bytes:
        self._writer.close()
        return self._sink.take()


def _csv(columns: Sequence[Field], metadata: Mapping[str, str], zone: dt.tzinfo) -> Encoder:
    return CsvEncoder(columns)


def _ndjson(columns: Sequence[Field], metadata: Mapping[str, str], zone: dt.tzinfo) -> Encoder:
    return NdjsonEncoder(columns)


def _parquet(columns: Sequence[Field], metadata: Mapping[str, str], zone: dt.tzinfo) -> Encoder:
    return ParquetEncoder(columns, metadata, zone)


# An encoder for the columns, with the file's metadata and the register's time zone.
EncoderFactory = Callable[[Sequence[Field], Mapping[str, str], dt.tzinfo], Encoder]

# format (file extension) -> (media type, encoder factory)
FORMATS: Mapping[str, tuple[str, EncoderFactory]] = {
    "csv": (CsvEncoder.media_type, _csv),
    "ndjson": (NdjsonEncoder.media_type, _ndjson),
    "parquet": (ParquetEncoder.media_type, _parquet),
}
