"""Expected values straight from the recorded XML, with the standard library only."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.resolvers.volby_xml.conftest import DATA


def local(tag: str) -> str:
    """A tag without its namespace."""
    return tag.rpartition("}")[2]


def root_of(path: Path) -> ET.Element:
    """The recorded document, parsed as its declaration says."""
    return ET.parse(path).getroot()


def children(element: ET.Element, name: str) -> list[ET.Element]:
    """Direct children with a local name."""
    return [c for c in element if local(c.tag) == name]


def council(path: Path, kodzastup: str) -> ET.Element:
    """The OBEC block of one council in a district or council document."""
    (found,) = [o for o in children(root_of(path), "OBEC") if o.get("KODZASTUP") == kodzastup]
    return found


def party_votes(obec: ET.Element) -> dict[tuple[int | None, int], int]:
    """HLASY per (CIS_OBVODU or None, POR_STR_HLAS_LIST) of a council block."""
    out: dict[tuple[int | None, int], int] = {}
    blocks: list[tuple[int | None, ET.Element]] = [(None, obec)]
    blocks += [(int(o.get("CIS_OBVODU", "0")), o) for o in children(obec, "OBVOD")]
    for district, block in blocks:
        for result in children(block, "VYSLEDEK"):
            for party in children(result, "VOLEBNI_STRANA"):
                out[(district, int(party.get("POR_STR_HLAS_LIST", "0")))] = int(
                    party.get("HLASY", "0")
                )
    return out


def batch_files(kolo: int | None = None) -> list[Path]:
    """The recorded presidential batches (of one round)."""
    pattern = f"kolo-{kolo}_davka-*.xml" if kolo else "kolo-*_davka-*.xml"
    return sorted((DATA / "prez2023").glob(pattern))


def newest_precincts(paths: Iterable[Path]) -> dict[tuple[int, str, str], dict[str, Any]]:
    """Per (KOLO, CIS_OBEC, CIS_OKRSEK) the version with the highest PORADI_ZPRAC."""
    best: dict[tuple[int, str, str], dict[str, Any]] = {}
    for path in paths:
        root = root_of(path)
        kolo = int(children(root, "DAVKA")[0].get("KOLO", "0"))
        for okrsek in children(root, "OKRSEK"):
            key = (kolo, okrsek.get("CIS_OBEC", ""), okrsek.get("CIS_OKRSEK", ""))
            poradi = int(okrsek.get("PORADI_ZPRAC", "0"))
            if key not in best or poradi > best[key]["PORADI_ZPRAC"]:
                votes = {
                    int(h.get("PORADOVE_CISLO", "0")): int(h.get("HLASY", "0"))
                    for h in children(okrsek, "HLASY_OKRSEK")
                }
                (ucast,) = children(okrsek, "UCAST_OKRSEK")
                best[key] = {
                    "PORADI_ZPRAC": poradi,
                    "OPAKOVANE": okrsek.get("OPAKOVANE") == "1",
                    "PLATNE_HLASY": int(ucast.get("PLATNE_HLASY", "0")),
                    "votes": votes,
                }
    return best
