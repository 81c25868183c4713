"""Pure functions for VALG files: names, signatures, parsing, values and keys.

What may be read from a file *name* is only its trailing ``-DDMMYYYYHHmm.json`` stamp (and the
rest of the name as an opaque series label used to order downloads): names contain hyphens,
spaces, commas and Danish letters, so identities always come from the content (such names are
in the recorded archives, ``data/valg/``, and ``tests/resolvers/valg_sftp/test_files.py``).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.model.datamodel import ScalarType
from gateway.model.errors import UpstreamInvalidError

__all__ = [
    "COPENHAGEN",
    "DocKey",
    "FileProblem",
    "convert",
    "decode_key",
    "identity_of",
    "load_public_key",
    "normalise_name",
    "parse_document",
    "parse_utc",
    "released_at",
    "series_and_stamp",
    "verify_signature",
    "withdrawn",
]

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
_STAMP = re.compile(r"-(\d{12})\.json$")
_DATE = re.compile(r"^(\d{2})-(\d{2})-(\d{4})$")
_DATETIME = re.compile(r"^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")


class FileProblem(Exception):
    """A file that must not be served; ``reason`` is a short code for notices and counters.

    Reasons: ``empty`` (zero bytes: still being written), ``unsigned`` (no ``.json.hash``),
    ``signature`` (does not verify), ``unparsable`` (not JSON), ``oversized`` (larger than
    configured), ``gone`` (deleted after the listing).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@functools.lru_cache(maxsize=65_536)
def series_and_stamp(name: str) -> tuple[str, dt.datetime | None]:
    """Split ``<series>-DDMMYYYYHHmm.json`` into the series label and the UTC stamp.

    The stamp is day-first, so its text does not sort chronologically; a name without one
    is a series of its own with no stamp. Remembered per name (bounded): every page of a
    walk groups the same directory listing again.
    """
    match = _STAMP.search(name)
    if match is not None:
        try:
            stamp = dt.datetime.strptime(match.group(1), "%d%m%Y%H%M")
        except ValueError:
            stamp = None
        else:
            return name[: match.start()], stamp
    return name.removesuffix(".json"), None


def withdrawn(gone: Iterable[str], listed: Iterable[str]) -> list[str]:
    """The names of ``gone`` whose series has no name in ``listed`` (withdrawn, not replaced
    by a newer version), sorted."""
    series = {series_and_stamp(n)[0] for n in listed}
    return sorted(n for n in gone if series_and_stamp(n)[0] not in series)


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """An election root's ``public-key.pem`` (RSA)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UpstreamInvalidError(f"VALG public-key.pem is not a PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise UpstreamInvalidError("VALG public-key.pem is not an RSA key")
    return key


def verify_signature(key: rsa.RSAPublicKey, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (a raw ``.json.hash``) signs ``data``: PKCS#1 v1.5, SHA-256."""
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_document(data: bytes) -> Any:
    """Parse a data file (UTF-8, a BOM tolerated); raises :class:`FileProblem`."""
    if not data:
        raise FileProblem("empty", "zero bytes")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FileProblem("unparsable", str(exc)) from exc
    if not isinstance(doc, dict | list):
        raise FileProblem("unparsable", "not a JSON object or array")
    return doc


def parse_utc(text: Any) -> dt.datetime | None:
    """``DD-MM-YYYY HH:mm:ss`` (UTC) as an aware datetime, or None."""
    if not isinstance(text, str):
        return None
    match = _DATETIME.match(text)
    if match is None:
        return None
    day, month, year, hour, minute, second = (int(g) for g in match.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None


def released_at(doc: Any) -> dt.datetime | None:
    """A document's ``FrigivelsesTidspunktUTC``."""
    return parse_utc(doc.get("FrigivelsesTidspunktUTC")) if isinstance(doc, dict) else None


def identity_of(doc: Mapping[str, Any], fields: list[str]) -> str | None:
    """The first non-null identity field of a document, as text (ids differ in type)."""
    for name in fields:
        value = doc.get(name)
        if value is not None and value != "":
            return str(value)
    return None


def normalise_name(text: str) -> str:
    """Letters and digits only, case-folded: for matching names across sanitisations."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


@dataclass(frozen=True, slots=True)
class DocKey:
    """What a ``Noegle`` says about the document it belongs to."""

    root: str
    verification: bool
    folder: str
    file: str
    identity: str


def decode_key(key: Any, with_file: bool) -> DocKey | None:
    """Read a ``Noegle`` (``root/[verifikation/]folder/[file/]identity[/...]``), or None."""
    if not isinstance(key, str):
        return None
    parts = key.split("/")
    verification = len(parts) > 1 and parts[1] == "verifikation"
    rest = parts[2:] if verification else parts[1:]
    need = 3 if with_file else 2
    if len(rest) < need:
        return None
    if with_file:
        return DocKey(parts[0], verification, rest[0], rest[1], rest[2])
    return DocKey(parts[0], verification, rest[0], "", rest[1])


def convert(value: Any, kind: ScalarType, valgdag: Any = None) -> Any:
    """A source value in the form the gateway serves (ISO 8601 for dates and times)."""
    if value is None:
        return None
    if kind is ScalarType.DATE:
        return _date(value)
    if kind is ScalarType.DATETIME:
        return _datetime(value, valgdag)
    if kind in (ScalarType.INT, ScalarType.LONG):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value
    if kind is ScalarType.FLOAT:
        return (
            float(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else value
        )
    if kind is ScalarType.STRING and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _date(value: Any) -> Any:
    match = _DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    day, month, year = match.groups()
    return f"{year}-{month}-{day}"


def _datetime(value: Any, valgdag: Any) -> Any:
    if not isinstance(value, str):
        return value
    utc = parse_utc(value)
    if utc is not None:
        return utc.replace(tzinfo=None).isoformat() + "Z"
    match = _TIME.match(value)
    day = _DATE.match(valgdag) if isinstance(valgdag, str) else None
    if match is None or day is None:
        return value
    # The upstream writes some times (e.g. turnout) as a wall-clock time on election day in
    # Denmark, without an offset: attach the offset in force on that day.
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    d, m, y = (int(g) for g in day.groups())
    try:
        local = dt.datetime(y, m, d, hour, minute, second, tzinfo=COPENHAGEN)
    except ValueError:
        return value
    return local.isoformat()
