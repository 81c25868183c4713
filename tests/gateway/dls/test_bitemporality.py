"""The ``1. Bitemporality`` annex: loaded into the register's times, and its mistakes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.dls.descriptors import load_registers
from gateway.model.datamodel import Temporal

REGISTERS = Path(__file__).resolve().parents[3] / "registers"


def _ft(tmp_path: Path, document: Any) -> Path:
    target = tmp_path / "registers" / "FT"
    shutil.copytree(REGISTERS / "FT", target)
    annex = target / "rc00001" / "1. Bitemporality" / "Bitemporality.json"
    annex.write_text(json.dumps(document), "utf-8")
    return tmp_path / "registers"


def test_the_shipped_annex_declares_ft_s_validity() -> None:
    (ft,) = [r for r in load_registers(REGISTERS).registers if r.name == "FT"]
    assert ft.temporal["Aktør"] == Temporal("Aktør", "opdateringsdato", "startdato", "slutdato")
    # every entity with an update time is registered by it; validity only where declared
    assert ft.temporal["Stemme"] == Temporal("Stemme", "opdateringsdato")
    with_update = {n for n, e in ft.datamodel.entities.items() if "opdateringsdato" in e.by_source}
    assert set(ft.temporal) == with_update


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"Entity": "Nope", "ValidFrom": "startdato"}, "unknown entity"),
        ({"Entity": "Aktør", "ValidFrom": "begyndelse"}, "has no field 'begyndelse'"),
        ({"Entity": "Aktør", "ValidTo": "navn"}, "is a String, not a date-time"),
        ({"Entity": "Aktør", "Valid": "startdato"}, "Additional properties"),
    ],
)
def test_a_broken_annex_is_an_error(tmp_path: Path, entry: dict[str, str], problem: str) -> None:
    report = load_registers(_ft(tmp_path, {"Entities": [entry]}))
    assert not report.ok
    assert problem in report.render()


def test_an_entity_named_twice_is_an_error(tmp_path: Path) -> None:
    twice = {"Entity": "Aktør", "ValidFrom": "startdato"}
    report = load_registers(_ft(tmp_path, {"Entities": [twice, twice]}))
    assert "named twice" in report.render()
