"""Independent readers of the recorded VALG archives, for computing expected answers.

Only the standard library (tarfile, json, datetime): nothing here uses the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[3] / "data" / "valg"
FV = "folketingsvalg-135-24-03-2026"
KV = "kommunalvalg-134-18-11-2025"
RV = "regionsrådsvalg-134-18-11-2025"
# Real file names used by several tests.
_AABENRAA_MIDT = "Folketingsvalg-Aabenraa_Kommune-Aabenraa_Midt"
AABENRAA_MIDT_FINAL = f"{FV}/valgresultater/valgresultater-{_AABENRAA_MIDT}-250320261137.json"
AABENRAA_MIDT_TURNOUT = f"{FV}/valgdeltagelse/valgdeltagelse-{_AABENRAA_MIDT}-240320260914.json"


@dataclass
class RawArchive:
    """Archive member name -> bytes, for both recordings."""

    files: dict[str, bytes]
    parsed: dict[str, Any] = field(default_factory=dict)

    def doc(self, name: str) -> Any:
        """The parsed JSON of a member (parsed once)."""
        if name not in self.parsed:
            self.parsed[name] = json.loads(self.files[name])
        return self.parsed[name]

    def folder(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """``(member name, bytes)`` of the ``.json`` files directly in ``prefix``."""
        for name, data in self.files.items():
            parent, _, base = name.rpartition("/")
            if parent == prefix and base.endswith(".json"):
                yield name, data


def read_raw() -> RawArchive:
    files: dict[str, bytes] = {}
    for archive in ("fv2026-folketingsvalg-135.tar.xz", "kvrv2025-valg-134.tar.xz"):
        with tarfile.open(DATA / archive) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    with handle:
                        files[member.name] = handle.read()
    return RawArchive(files)


def released(doc: dict[str, Any]) -> dt.datetime:
    return dt.datetime.strptime(doc["FrigivelsesTidspunktUTC"], "%d-%m-%Y %H:%M:%S")


def newest_by(
    raw: RawArchive, prefix: str, key: str, until: dt.datetime | None = None
) -> dict[Any, tuple[str, dict[str, Any]]]:
    """Per value of ``key``: the non-empty file with the latest release (optionally by a time)."""
    best: dict[Any, tuple[str, dict[str, Any]]] = {}
    for name, data in raw.folder(prefix):
        if not data:
            continue
        doc = raw.doc(name)
        if until is not None and released(doc) > until:
            continue
        old = best.get(doc[key])
        if old is None or released(doc) > released(old[1]):
            best[doc[key]] = (name, doc)
    return best


def geografi(raw: RawArchive, kind: str) -> list[dict[str, Any]]:
    """The elements of an FV2026 geografi file (``Kommune``, ``Afstemningsomraade``...)."""
    for name, data in raw.folder(f"{FV}/geografi"):
        if name.rpartition("/")[2].startswith(f"{kind}-"):
            elements: list[dict[str, Any]] = json.loads(data)
            return elements
    raise KeyError(kind)
