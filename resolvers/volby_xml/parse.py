"""Reading volby.cz XML safely: encodings, hostile markup, error documents, timestamps.

Every function here is pure (bytes in, values out). Parse failures of any kind come out as
:class:`gateway.model.errors.UpstreamInvalidError`; nothing from the document is ever resolved
outside
it (no DTDs, no entities, no external references).
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from gateway.model.errors import UpstreamInvalidError

__all__ = [
    "BATCH_MISSING",
    "NOT_ACTIVATED",
    "NOT_YET_AVAILABLE",
    "NO_BATCH_YET",
    "Chyba",
    "decode_xml",
    "error_of",
    "generated_at",
    "local_name",
    "parse_xml",
    "prague_iso",
]

# ČSÚ's error codes (KOD_CHYBY) that mean "not yet", with what they say; 9999 is any other error.
BATCH_MISSING = 10
"""The batch (or the data) does not exist yet ("číslo dávky neexistuje – není ještě vytvořena")."""
NOT_ACTIVATED = 20
"""Processing for that election date is not activated yet ("zpracování pro dané datum ještě není
aktivováno"); ČSÚ answers a wrong date the same way."""
NO_BATCH_YET = 30
"""No batch exists yet for that election date ("pro zadané datum voleb ještě neexistuje žádná
dávka")."""
NOT_YET_AVAILABLE: dict[int, str] = {
    BATCH_MISSING: "the batch or data does not exist yet",
    NOT_ACTIVATED: "processing for this election date is not activated (yet)",
    NO_BATCH_YET: "no batch exists yet for this election date",
}
_DECLARATION = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_TIMESTAMP_2014 = "%d/%m/%Y %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Chyba:
    """An error document (``<CHYBA KOD_CHYBY="10"/>`` or ``<CHYBA>text</CHYBA>``)."""

    code: int | None
    text: str

    @property
    def not_yet_available(self) -> bool:
        """Errors 10, 20 and 30: the data (a batch, results, the election) is not there yet."""
        return self.code in NOT_YET_AVAILABLE

    @property
    def meaning(self) -> str | None:
        """What a "not yet" code means, for people (None for other errors)."""
        return NOT_YET_AVAILABLE.get(self.code) if self.code is not None else None

    def describe(self) -> str:
        """The error for people."""
        if self.code is not None and self.text:
            return f"error {self.code}: {self.text}"
        return f"error {self.code}" if self.code is not None else self.text or "unspecified error"


def decode_xml(data: bytes) -> str:
    """The document's text, decoded as its XML declaration says.

    One recorded ČSÚ response declares ISO-8859-2 while its bytes are UTF-8: when a document
    declaring a single-byte encoding is valid UTF-8 and not plain ASCII, it is read as UTF-8
    (real ISO-8859-2 or windows-1250 Czech text is never valid UTF-8).
    """
    if data.startswith(codecs.BOM_UTF8):
        return _decode(data[len(codecs.BOM_UTF8) :], "utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(data, "utf-16")
    match = _DECLARATION.match(data[:200])
    declared = match.group(1).decode("ascii") if match else "utf-8"
    try:
        codec = codecs.lookup(declared).name
    except LookupError:
        raise UpstreamInvalidError(f"unknown XML encoding {declared!r}") from None
    if codec != "utf-8" and not data.isascii():
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _decode(data, codec)


def _decode(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise UpstreamInvalidError(f"XML is not valid {codec}: {exc.reason}") from exc


def parse_xml(data: bytes) -> ET.Element:
    """Parse an upstream document, refusing DTDs, entity declarations and external references."""
    text = decode_xml(data)
    try:
        root: ET.Element = SafeET.fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise UpstreamInvalidError(f"refused unsafe XML ({type(exc).__name__})") from exc
    except ET.ParseError as exc:
        raise UpstreamInvalidError(f"malformed or truncated XML: {exc}") from exc
    return root


def local_name(tag: str) -> str:
    """A tag without its namespace."""
    return tag.rpartition("}")[2]


def error_of(root: ET.Element) -> Chyba | None:
    """The error a document reports instead of results, if any."""
    for child in root:
        if local_name(child.tag) == "CHYBA":
            code_text = child.get("KOD_CHYBY")
            try:
                code = int(code_text) if code_text is not None else None
            except ValueError:
                code = None
            text = " ".join((child.text or "").split())
            if code is None and code_text:
                text = f"{code_text} {text}".strip()
            return Chyba(code, text)
    return None


def generated_at(attributes: dict[str, str]) -> str | None:
    """The response's generation time as ISO 8601 with the Prague offset.

    2014 documents write ``DATUM_GENEROVANI="23/09/2014" CAS_GENEROVANI="16:21:53"``, later ones
    ``DATUM_CAS_GENEROVANI="2022-09-24T14:00:00"``; both are Czech local time without a zone.
    """
    combined = attributes.get("DATUM_CAS_GENEROVANI")
    if combined:
        return prague_iso(combined)
    day, time = attributes.get("DATUM_GENEROVANI"), attributes.get("CAS_GENEROVANI")
    if day and time:
        try:
            value = dt.datetime.strptime(f"{day.strip()} {time.strip()}", _TIMESTAMP_2014)
        except ValueError as exc:
            raise UpstreamInvalidError(f"bad generation time {day!r} {time!r}") from exc
        return _attach_prague(value).isoformat()
    return None


def prague_iso(text: str) -> str:
    """An ``xs:dateTime`` as ISO 8601 with an offset; zone-less values are Prague local time."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UpstreamInvalidError(f"bad timestamp {text!r}") from exc
    if value.tzinfo is None:
        value = _attach_prague(value)
    return value.isoformat()


def _attach_prague(value: dt.datetime) -> dt.datetime:
    try:
        return value.replace(tzinfo=ZoneInfo("Europe/Prague"))
    except ZoneInfoNotFoundError:
        return value.replace(tzinfo=dt.timezone(_central_european_offset(value)))


def _central_european_offset(value: dt.datetime) -> dt.timedelta:
    # Without a time-zone database: CET, and CEST from the last Sunday of March to the last
    # Sunday of October (EU rules since 1996).
    def last_sunday(month: int) -> dt.datetime:
        day = dt.datetime(value.year, month, 31)
        return day - dt.timedelta(days=(day.weekday() + 1) % 7)

    summer = last_sunday(3).replace(hour=2) <= value < last_sunday(10).replace(hour=3)
    return dt.timedelta(hours=2 if summer else 1)
