"""Delta and temporal downloads in the annex: offered where rows are recorded, a warning where
the kind records none (the downloads there are totals of current data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gateway.dls.descriptors import load_registers

REGISTERS = Path(__file__).resolve().parents[3] / "registers"
DELTA = {"EntityName": "All", "FileDownloadType": 2, "TypeOfData": 1, "Frequency": 1,
         "SecurityLevel": 0}  # fmt: skip


def _with_delta(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "registers" / name
    shutil.copytree(REGISTERS / name, target)
    (annex,) = target.glob("rc*/4. Tabular_data/Automated_Predefined_Filedownloads.json")
    entries = json.loads(annex.read_text("utf-8"))
    annex.write_text(json.dumps([*entries, DELTA]), "utf-8")
    return tmp_path / "registers"


def test_a_delta_where_no_rows_are_recorded_is_a_warning(tmp_path: Path) -> None:
    report = load_registers(_with_delta(tmp_path, "DE"))
    assert report.ok
    warnings = [str(w) for w in report.warnings]
    assert any("records no row versions" in w for w in warnings), warnings


def test_a_delta_where_rows_are_recorded_is_offered(tmp_path: Path) -> None:
    report = load_registers(_with_delta(tmp_path, "FT"))
    assert report.ok
    assert not [w for w in report.warnings if "row versions" in str(w)]
    (ft,) = report.registers
    assert ft.events is not None
    assert ft.events.graphql_name == "FT_Events"
