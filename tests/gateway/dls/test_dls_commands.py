"""``gateway validate``, ``relations-skeleton``, ``schema`` on a DLS delivery, as users run them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from tests.support import ROOT

DELIVERY = Path(__file__).parent / "delivery"
DEFECTS = Path(__file__).parent / "defects"
UML = "http://schema.omg.org/spec/UML/2.1"
XMI = "http://schema.omg.org/spec/XMI/2.1"


def _committed(register: str, rc: str) -> list[dict[str, Any]]:
    path = DELIVERY / "Register" / register / rc / "2. Datamodel" / "Relations.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    relations: list[dict[str, Any]] = document["RelationVersions"][-1]["Relations"]
    return relations


def _rc_number(value: str) -> str:
    return str(int(value.removeprefix("rc")))


def _essentials(relations: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {
        (
            r["SourceEntity"],
            _rc_number(r["TargetRc"]),
            r["TargetRcVersion"],
            r["TargetEntity"],
            str(r["ToManyRelation"]),
            r["Alias"],
        )
        for r in relations
    }


@pytest.mark.parametrize(("register", "rc"), [("DAR", "rc00022"), ("BBR", "rc00018")])
def test_relations_skeleton_reproduces_the_associations(
    register: str, rc: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["relations-skeleton", register, "--registers", str(DELIVERY)])
    out, err = capsys.readouterr()
    assert code == 0, err
    generated = json.loads(out)["RelationVersions"][0]["Relations"]
    assert _essentials(generated) == _essentials(_committed(register, rc))
    assert {r["SourceField"] for r in generated} == {""}
    assert {r["TargetField"] for r in generated} == {""}
    assert "0 error(s)" in err


def test_relations_skeleton_leaves_out_a_defective_association(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    delivery = tmp_path / "delivery"
    shutil.copytree(DELIVERY, delivery)
    xmi = delivery / "Register" / "DAR" / "rc00022" / "2. Datamodel" / "1.0.0.DAR.xmi"
    shutil.copy(DEFECTS / "undefined_multiplicity.xmi", xmi)
    code = main(["relations-skeleton", "DAR", "--registers", str(delivery), "-o", "-"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "Undefined Multiplicity" in err
    generated = json.loads(out)["RelationVersions"][0]["Relations"]
    # Exactly the associations whose target end has a usable multiplicity are generated.
    root = ET.parse(xmi).getroot()
    healthy, defective = set(), set()
    for node in root.iter("packagedElement"):
        if node.get(f"{{{XMI}}}type") != "uml:Association":
            continue
        target = next(
            end
            for end in node.iter("ownedEnd")
            if end.get(f"{{{XMI}}}id", "").startswith("EAID_dst")
        )
        (healthy if target.find("upperValue") is not None else defective).add(node.get("name"))
    assert defective
    assert {r["Alias"] for r in generated} == healthy


def test_relations_skeleton_for_a_register_without_xmi(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["relations-skeleton", "NOPE", "--registers", str(DELIVERY)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "'NOPE' delivers no readable DLS pair" in err


def test_validate_finds_a_breaking_change_against_a_previous_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    delivery = tmp_path / "delivery"
    shutil.copytree(DELIVERY, delivery)
    xsd = delivery / "Register" / "DAR" / "rc00022" / "2. Datamodel" / "1.0.0.DAR.xsd"
    text = xsd.read_text(encoding="utf-8")
    start = text.index('<xs:complexType name="NavngivenVejType">')
    text = text[:start] + text[start:].replace('type="xs:string"', 'type="xs:int"', 1)
    xsd.write_text(text, encoding="utf-8")
    assert main(["validate", str(delivery), "--previous-registers", str(DELIVERY)]) == 1
    out, _ = capsys.readouterr()
    assert "NavngivenVej" in out
    assert "MAJOR" in out
    assert main(["validate", str(delivery), "--previous-registers", "none"]) == 0
    assert main(["validate", str(delivery), "--previous-registers", str(tmp_path / "x")]) == 2


def test_validate_and_schema_as_commands(tmp_path: Path) -> None:
    validate = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(DELIVERY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "0 error(s)" in validate.stdout
    assert "BBR (rc00018)" in validate.stdout
    assert "DAR (rc00022)" in validate.stdout
    sdl = tmp_path / "schema.graphql"
    schema = subprocess.run(
        [sys.executable, "-m", "gateway", "schema", "--registers", str(DELIVERY), "-o", str(sdl)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.returncode == 0, schema.stderr
    assert "type BBR_Bygning" in sdl.read_text(encoding="utf-8")
