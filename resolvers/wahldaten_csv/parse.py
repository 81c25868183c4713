"""Reading Offene Wahldaten CSV files by the standard's rules.

The standard (https://offenewahldaten.de/dateiformate/allgemein): separator ``;``, UTF-8, one
header line, columns found by name (their order differs between producers), free-text fields
quoted as in RFC 4180, so a field may hold ``;``, doubled quotes and line breaks. Real files add a
few deviations that must not stop the rest of a file from being read: CRLF line ends, a trailing
blank line, a BOM, header-only files, short or long rows, truncated files. Each deviation becomes
a :class:`DataWarning` with the file and line; only a file with no usable header is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DataWarning",
    "Record",
    "Table",
    "WarningLog",
    "decode",
    "german_date",
    "german_timestamp",
    "parse_records",
    "read_table",
]

SEPARATOR = ";"
QUOTE = '"'


@dataclass(frozen=True, slots=True)
class DataWarning:
    """A problem in an upstream file that was worked around; ``line`` is 1-based, 0 = whole file.

    ``count`` says how many lines had the same problem in the same column (the first is ``line``).
    """

    code: str
    message: str
    file: str
    line: int = 0
    column: str = ""
    count: int = 1

    def as_notice(self) -> dict[str, Any]:
        """The warning as a ``Page.notices`` entry."""
        notice: dict[str, Any] = {
            "level": "warning",
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
        }
        if self.column:
            notice["column"] = self.column
        if self.count > 1:
            notice["count"] = self.count
        return notice

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        more = f" (and {self.count - 1} more lines)" if self.count > 1 else ""
        return f"{where}: {self.message}{more}"


@dataclass(slots=True)
class WarningLog:
    """Collects warnings; repeats of a problem in one column of one file are counted, not listed."""

    items: dict[tuple[str, str, str], DataWarning] = field(default_factory=dict)

    def add(self, code: str, message: str, file: str, line: int = 0, column: str = "") -> None:
        """Record a warning (the first occurrence keeps its line and message)."""
        key = (file, code, column)
        seen = self.items.get(key)
        if seen is None:
            self.items[key] = DataWarning(code, message, file, line, column)
        else:
            self.items[key] = DataWarning(
                seen.code, seen.message, seen.file, seen.line, seen.column, seen.count + 1
            )

    def extend(self, warnings: tuple[DataWarning, ...] | list[DataWarning]) -> None:
        """Add already-built warnings (kept as they are)."""
        for warning in warnings:
            self.items.setdefault((warning.file, warning.code, warning.column), warning)

    def freeze(self) -> tuple[DataWarning, ...]:
        """The warnings in the order they were first seen."""
        return tuple(self.items.values())


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV record: the physical line it starts on and its fields."""

    line: int
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A parsed file: header, the records that have the header's width, and the warnings."""

    file: str
    header: tuple[str, ...]
    records: tuple[Record, ...]
    warnings: tuple[DataWarning, ...] = ()
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Columns are found by name; a repeated name keeps its first position.
        positions: dict[str, int] = {}
        for position, name in enumerate(self.header):
            positions.setdefault(name, position)
        object.__setattr__(self, "index", positions)

    def get(self, record: Record, column: str) -> str | None:
        """The raw text of ``column`` in ``record``, or None if the file has no such column."""
        position = self.index.get(column)
        return None if position is None else record.values[position]


def decode(data: bytes, file: str, log: WarningLog) -> str:
    """UTF-8 text (a BOM tolerated); other bytes are read as Windows-1252, with a warning.

    German files that are not UTF-8 are almost always Excel's Windows-1252 exports, so that
    guess gives readable umlauts where a replacement character would lose them.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        log.add("BOM", "the file starts with a byte order mark (the standard says without)", file)
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        log.add(
            "NOT_UTF8",
            f"the file is not valid UTF-8 (byte {exc.start}); it was read as Windows-1252",
            file,
        )
        return data.decode("cp1252", errors="replace")


def parse_records(text: str, file: str, log: WarningLog) -> Iterator[Record]:
    """Split ``text`` into records by RFC 4180 with ``;`` (CRLF or LF line ends).

    Blank lines are skipped. A quoted field left open at the end of the file is reported and its
    first line skipped; reading resumes on the next line, so one stray quote loses one line.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the line break that ends the last line
    position = 0
    while position < len(lines):
        start = position
        line = lines[position]
        if QUOTE not in line:
            position += 1
            stripped = line[:-1] if line.endswith("\r") else line
            if stripped.strip():
                yield Record(start + 1, tuple(stripped.split(SEPARATOR)))
            continue
        parsed = _quoted_record(lines, position, file, log)
        if parsed is None:
            log.add(
                "UNTERMINATED_QUOTE",
                "a quoted field is never closed; the line was skipped",
                file,
                start + 1,
            )
            position += 1
            continue
        values, position = parsed
        yield Record(start + 1, values)


def _quoted_record(
    lines: list[str], position: int, file: str, log: WarningLog
) -> tuple[tuple[str, ...], int] | None:
    """Parse one record that contains quotes, maybe over several lines; None if left open."""
    values: list[str] = []
    current: list[str] = []
    quoted = False  # inside a quoted field
    field_start = True  # at the first character of a field
    line_number = position + 1
    text = lines[position]
    index = 0
    while True:
        if index >= len(text):
            if not quoted:
                break
            # A line break inside quotes belongs to the field.
            position += 1
            if position >= len(lines):
                return None
            current.append("\n")
            text, index = lines[position], 0
            continue
        char = text[index]
        index += 1
        if quoted:
            if char != QUOTE:
                current.append(char)
            elif index < len(text) and text[index] == QUOTE:
                current.append(QUOTE)
                index += 1
            else:
                quoted = False
        elif char == SEPARATOR:
            values.append("".join(current))
            current, field_start = [], True
            continue
        elif char == QUOTE and field_start and not current:
            quoted = True
        elif char == "\r" and index == len(text):
            continue  # the CR of a CRLF line end, outside quotes
        else:
            if char == QUOTE:
                log.add(
                    "STRAY_QUOTE",
                    "a quote inside an unquoted field (kept as text)",
                    file,
                    line_number,
                )
            current.append(char)
        field_start = False
    values.append("".join(current))
    return tuple(values), position + 1


def read_table(data: bytes, file: str) -> Table:
    """Parse a whole file. Rows whose width differs from the header's are reported and skipped.

    Raises ValueError when the file has no header line at all.
    """
    log = WarningLog()
    text = decode(data, file, log)
    records = parse_records(text, file, log)
    header_record = next(records, None)
    if header_record is None:
        raise ValueError(f"{file}: the file is empty (no header line)")
    header = tuple(name.strip() for name in header_record.values)
    rows: list[Record] = []
    last: Record | None = None
    for record in records:
        last = record
        if len(record.values) == len(header):
            rows.append(record)
            continue
        log.add(
            "ROW_WIDTH",
            f"the row has {len(record.values)} fields, the header {len(header)}: row skipped",
            file,
            record.line,
        )
    if last is not None and text and not text.endswith("\n"):
        log.add(
            "NO_FINAL_LINE_BREAK",
            "the file does not end with a line break; its last row may be cut off",
            file,
            last.line,
        )
    _check_header(header, file, log)
    return Table(file, header, tuple(rows), log.freeze())


def _check_header(header: tuple[str, ...], file: str, log: WarningLog) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            log.add(
                "DUPLICATE_COLUMN",
                f"column {name!r} appears twice; the first is used",
                file,
                1,
                name,
            )
        seen.add(name)


_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIMESTAMP = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:[ .,](\d{1,6}))?"
)


def german_date(text: str) -> str | None:
    """``dd.mm.yyyy`` (or already ISO) as ISO 8601 ``yyyy-mm-dd``; None if it is no valid date."""
    text = text.strip()
    match = _DATE.fullmatch(text)
    if match:
        day, month, year = (int(part) for part in match.groups())
    else:
        iso = _ISO_DATE.fullmatch(text)
        if not iso:
            return None
        year, month, day = (int(part) for part in iso.groups())
    return _valid_date(year, month, day)


def _valid_date(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def german_timestamp(text: str) -> str | None:
    """``dd.mm.yyyy hh:mm:ss`` (optionally with milliseconds, as votemanager writes
    ``15.09.2025 09:03:13 809``) as ISO 8601 without zone; None if it is no valid timestamp.
    """
    match = _TIMESTAMP.fullmatch(text.strip())
    if not match:
        return None
    day, month, year, hour, minute = (int(part) for part in match.groups()[:5])
    second = int(match.group(6) or 0)
    date = _valid_date(year, month, day)
    if date is None or hour > 23 or minute > 59 or second > 59:
        return None
    stamp = f"{date}T{hour:02d}:{minute:02d}:{second:02d}"
    fraction = match.group(7)
    if not fraction:
        return stamp
    # A decimal fraction of a second; ISO readers want 3 or 6 digits.
    return f"{stamp}.{fraction.ljust(3 if len(fraction) <= 3 else 6, '0')}"
