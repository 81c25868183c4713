"""The recorded volby.cz responses the replica serves, and the documents derived from them.

Recorded files are served byte for byte (their encodings included). Two kinds of document are
derived, never invented: a single-council document (``vysledky_obec``) is the council's block cut
out of its recorded district document, under the ``VYSLEDKY_OBEC`` root with the district
document's declaration and timestamp; and error documents follow the recorded error answer.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = [
    "DATA_DIR",
    "Batch",
    "ElectionData",
    "councils_of",
    "error_document",
    "load_catalogue",
]

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "cz"

KV_NAMESPACE = "http://www.volby.cz/kv/"
PREZ_NAMESPACE = "http://www.volby.cz/prezident/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_COUNCIL = re.compile(rb'<OBEC KODZASTUP="([0-9]+)"')
_ROOT_TIMESTAMPS = re.compile(
    rb'\b(?:DATUM_GENEROVANI|CAS_GENEROVANI|DATUM_CAS_GENEROVANI)="[^"]*"'
)
_GENERATED = re.compile(rb'DATUM_CAS_GENEROVANI="([^"]+)"')

ROOTS = {
    "vysledky": "VYSLEDKY",
    "vysledky_obce_okres": "VYSLEDKY_OBCE_OKRES",
    "vysledky_obec": "VYSLEDKY_OBEC",
    "vysledky_okrsky": "VYSLEDKY_OKRSKY",
}


@dataclass(frozen=True, slots=True)
class Batch:
    """One precinct batch: its bytes and when it appeared, in seconds after the first."""

    content: bytes
    offset: float


@dataclass
class ElectionData:
    """What the replica knows of one election path (``/pls/<name>/``)."""

    name: str
    kind: str  # "kv" (municipal) or "prez" (presidential)
    datumvoleb: str | None
    national: bytes | None = None
    districts: dict[str, bytes] = field(default_factory=dict)
    councils: dict[str, bytes] = field(default_factory=dict)
    series: dict[str, dict[int, Batch]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return PREZ_NAMESPACE if self.kind == "prez" else KV_NAMESPACE

    def schema(self, document: str) -> str:
        """The schema file a document of this election names."""
        prefix = "pe" if self.kind == "prez" else "kv"
        return f"{prefix}_{document}.xsd"


def load_catalogue(data_dir: Path = DATA_DIR) -> dict[str, ElectionData]:
    """The recorded elections: municipal 2014 and 2022, presidential 2023."""
    kv2014 = ElectionData("kv2014", "kv", "20141010")
    kv2014.national = (data_dir / "kv2014" / "vysledky.xml").read_bytes()
    for nuts in ("CZ0100", "CZ0806"):
        kv2014.districts[nuts] = (data_dir / "kv2014" / f"{nuts}.xml").read_bytes()
        kv2014.councils.update(councils_of(kv2014.districts[nuts]))
    kv2014.series[""] = {}
    kv2022 = ElectionData("kv2022", "kv", "20220923")
    kv2022.councils["551082"] = (data_dir / "kv2022" / "obec_551082.xml").read_bytes()
    kv2022.series[""] = {}
    prez = ElectionData("prez2023", "prez", None)
    for kolo in ("1", "2"):
        prez.series[kolo] = _batches(data_dir / "prez2023", f"kolo-{kolo}_davka-")
    return {e.name: e for e in (kv2014, kv2022, prez)}


def _batches(folder: Path, prefix: str) -> dict[int, Batch]:
    contents = {
        int(path.stem.removeprefix(prefix)): path.read_bytes()
        for path in folder.glob(f"{prefix}*.xml")
    }
    times = {n: _generated(c) for n, c in contents.items()}
    first = min(times.values())
    return {n: Batch(contents[n], (times[n] - first).total_seconds()) for n in sorted(contents)}


def _generated(content: bytes) -> dt.datetime:
    match = _GENERATED.search(content)
    if match is None:
        raise ValueError("batch without DATUM_CAS_GENEROVANI")
    return dt.datetime.fromisoformat(match.group(1).decode("ascii"))


def councils_of(district: bytes) -> dict[str, bytes]:
    """Single-council documents cut out of a district document, in its own encoding."""
    declaration = district[: district.index(b"?>") + 2]
    root_end = district.index(b">", district.index(b"<VYSLEDKY_OBCE_OKRES"))
    stamps = b" ".join(_ROOT_TIMESTAMPS.findall(district[:root_end]))
    head = (
        declaration
        + b'\n<VYSLEDKY_OBEC xmlns="http://www.volby.cz/kv/" '
        + b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        + b'               xsi:schemaLocation="http://www.volby.cz/kv/ kv_vysledky_obec.xsd"\n'
        + b"               "
        + stamps
        + b">\n"
    )
    out = {}
    for match in _COUNCIL.finditer(district):
        end = district.index(b"</OBEC>", match.start()) + len(b"</OBEC>")
        out[match.group(1).decode("ascii")] = (
            head + district[match.start() : end] + b"\n</VYSLEDKY_OBEC>\n"
        )
    return out


def error_document(
    election: ElectionData,
    document: str,
    *,
    code: int | None = None,
    text: str | None = None,
    now: dt.datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> bytes:
    """An error answer: the requested document's root holding only ``CHYBA``.

    ``code`` gives the attribute form (``<CHYBA KOD_CHYBY="10"/>``, as recorded from the batch
    endpoint); ``text`` the text form that ČSÚ's parliamentary schema defines.
    """
    root = ROOTS[document]
    stamp = (now or dt.datetime.now()).replace(microsecond=0).isoformat()
    pad = " " * (len(root) + 2)
    if code is not None:
        chyba = f'<CHYBA KOD_CHYBY="{code}"/>'
    else:
        chyba = f"<CHYBA>{escape(text or '')}</CHYBA>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{root} xmlns="{election.namespace}" xmlns:xsi="{_XSI}"\n'
        f'{pad}xsi:schemaLocation="{election.namespace} {election.schema(document)}"\n'
        f'{pad}DATUM_CAS_GENEROVANI="{stamp}">\n'
        f"{chyba}\n"
        f"</{root}>\n"
    ).encode()
