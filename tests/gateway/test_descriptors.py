"""Descriptor validation: one broken descriptor per error kind, and the shipped registers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.dls.descriptors import load_registers
from gateway.http.app import create_app
from gateway.http.config import Settings
from gateway.model.errors import DescriptorError
from tests.support import REGISTERS

RELATIONS = Path("rc00001") / "2. Datamodel" / "Relations.json"


@pytest.fixture
def ft(tmp_path: Path) -> Path:
    """A writable copy of the FT register."""
    target = tmp_path / "registers" / "FT"
    shutil.copytree(REGISTERS / "FT", target)
    return target


def _edit_relations(register: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    path = register / RELATIONS
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document["RelationVersions"][0]["Relations"])
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def _stemme_aktoer(relations: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in relations if r["SourceEntity"] == "Stemme" and r["Alias"] == "Aktør")


def _validate(register: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(register.parent)])
    return code, capsys.readouterr().out


def test_shipped_registers_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REGISTERS / "FT")]) == 0
    out = capsys.readouterr().out
    assert "0 error(s)" in out
    assert "FT (rc00001)" in out


def _set(key: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    return lambda relations: _stemme_aktoer(relations).__setitem__(key, value)


def _delete(key: str) -> Callable[[list[dict[str, Any]]], None]:
    return lambda relations: _stemme_aktoer(relations).pop(key)


def _duplicate_alias(relations: list[dict[str, Any]]) -> None:
    _stemme_aktoer(relations)
    stemmetype = next(
        r for r in relations if r["SourceEntity"] == "Stemme" and r["Alias"] == "Stemmetype"
    )
    stemmetype["Alias"] = "Aktør"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set("SourceEntity", "Stemmer"), "unknown source entity 'Stemmer'"),
        (_set("TargetEntity", "Aktoer"), "unknown target entity 'Aktoer'"),
        (_set("SourceField", "aktoerid"), "SourceField 'aktoerid' is not a field of Stemme"),
        (_set("TargetField", "ident"), "TargetField 'ident' is not a field of FT Aktør"),
        (_delete("ToManyRelation"), "'ToManyRelation' is a required property"),
        (_set("ToManyRelation", "false"), "ToManyRelation: 'false' is not of type 'boolean'"),
        (_duplicate_alias, "alias 'Aktoer' is already used on Stemme"),
        (_set("TargetRc", "rc00042"), "TargetRc 'rc00042' is no loaded register's"),
    ],
)
def test_each_broken_relation_is_an_error_that_drops_it(
    ft: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[list[dict[str, Any]]], None],
    expected: str,
) -> None:
    _edit_relations(ft, change)
    code, out = _validate(ft, capsys)
    assert code == 1
    assert expected in out
    assert "Relations.json" in out
    assert "fix:" in out
    report = load_registers(ft.parent, previous_relations={})
    kept = report.registers[0].relation_versions["1"]
    assert len(kept) == 117  # the broken one is dropped, the rest stay
    with pytest.raises(DescriptorError, match="the registers are invalid"):
        create_app(Settings(registers_dir=ft.parent))


def test_relation_removed_from_a_published_version(
    ft: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = ft.parent.parent / "previous.json"
    shutil.copy(ft / RELATIONS, previous)
    _edit_relations(ft, lambda relations: relations.remove(_stemme_aktoer(relations)))
    code = main(
        ["validate", str(ft.parent), "--previous", str(previous), "--previous-register", "FT"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "relation Stemme.aktørid → Aktør.id (alias 'Aktør') was removed" in out
    assert "new RelationVersion" in out


def test_a_new_relation_version_may_drop_a_relation(ft: Path) -> None:
    path = ft / RELATIONS
    document = json.loads(path.read_text(encoding="utf-8"))
    previous = json.loads(json.dumps(document))
    second = json.loads(json.dumps(document["RelationVersions"][0]))
    second["RelationVersionNumber"] = "2"
    second["Relations"] = [r for r in second["Relations"] if r["Alias"] != "Stemmetype"]
    document["RelationVersions"].append(second)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    report = load_registers(ft.parent, previous_relations={"FT": previous})
    assert report.ok, report.render()
    versions = report.registers[0].relation_versions
    assert len(versions["1"]) == 118
    assert len(versions["2"]) == 117
    assert "Stemmetype" not in {r.alias for r in versions["2"]}
    assert report.registers[0].newest_version == "2"


def test_empty_alias_is_a_warning_with_a_generated_name(ft: Path) -> None:
    _edit_relations(ft, _set("Alias", ""))
    report = load_registers(ft.parent, previous_relations={})
    assert report.ok
    (warning,) = report.warnings
    assert "aktørid_rc00001_Aktør_id_ref" not in warning.problem
    assert "'aktoerid_rc00001_Aktoer_id_ref'" in warning.problem
    aliases = {r.alias for r in report.registers[0].relation_versions["1"]}
    assert "aktoerid_rc00001_Aktoer_id_ref" in aliases


def test_no_relations_is_a_warning(ft: Path) -> None:
    _edit_relations(ft, lambda relations: relations.clear())
    report = load_registers(ft.parent, previous_relations={})
    assert report.ok
    assert any("has no relations" in w.problem for w in report.warnings)


def test_broken_json_and_broken_annexes(ft: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ft / RELATIONS).write_text("{not json", encoding="utf-8")
    security = ft / "rc00001" / "3. Security" / "Security_Model.json"
    security.write_text(json.dumps({"DefaultSecurity": 7}), encoding="utf-8")
    code, out = _validate(ft, capsys)
    assert code == 1
    assert "not valid JSON" in out
    assert "7 is greater than the maximum of 3" in out


def test_security_model_names_unknown_entities_and_fields(ft: Path) -> None:
    security = ft / "rc00001" / "3. Security" / "Security_Model.json"
    security.write_text(
        json.dumps(
            {
                "DefaultSecurity": 0,
                "SpecificSecurity": [{"SecurityLevel": 1, "Entities": ["Aktør.alder"]}],
            }
        ),
        encoding="utf-8",
    )
    report = load_registers(ft.parent, previous_relations={})
    assert not report.ok
    assert "unknown field 'alder' of Aktør" in report.render()
    security.write_text(
        json.dumps(
            {
                "DefaultSecurity": 0,
                "SpecificSecurity": [
                    {"SecurityLevel": 2, "Entities": ["Aktør.biografi", "Stemme"]}
                ],
            }
        ),
        encoding="utf-8",
    )
    register = load_registers(ft.parent, previous_relations={}).registers[0]
    assert register.field_level("Aktør", "biografi") == 2
    assert register.field_level("Aktør", "navn") == 0
    assert register.entity_level("Stemme") == 2
    assert register.field_level("Stemme", "id") == 2


def test_missing_or_unknown_datamodel(ft: Path) -> None:
    source = ft / "rc00001" / "Source.json"
    document = json.loads(source.read_text(encoding="utf-8"))
    document["datamodel"]["format"] = "uml"
    source.write_text(json.dumps(document), encoding="utf-8")
    assert "unknown datamodel format 'uml'" in load_registers(ft.parent).render()
    document["datamodel"] = {"format": "edmx", "path": "missing.edmx"}
    source.write_text(json.dumps(document), encoding="utf-8")
    assert "the datamodel file is missing" in load_registers(ft.parent).render()
    (ft / "rc00001" / "2. Datamodel" / "bad.edmx").write_text("<Edmx", encoding="utf-8")
    document["datamodel"] = {"format": "edmx", "path": "bad.edmx"}
    source.write_text(json.dumps(document), encoding="utf-8")
    assert "not well-formed XML" in load_registers(ft.parent).render()


def test_relations_skeleton_from_edmx(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relations-skeleton", str(REGISTERS / "FT")]) == 0
    skeleton = json.loads(capsys.readouterr().out)
    relations = skeleton["RelationVersions"][0]["Relations"]
    assert len(relations) == 118
    assert all(r["SourceField"] == "" and r["TargetField"] == "" for r in relations)
    stemme = {r["Alias"]: r for r in relations if r["SourceEntity"] == "Stemme"}
    assert set(stemme) == {"Afstemning", "Aktør", "Stemmetype"}
    assert stemme["Aktør"]["ToManyRelation"] is False
    shipped = json.loads((REGISTERS / "FT" / RELATIONS).read_text(encoding="utf-8"))
    filled = {(r["SourceEntity"], r["Alias"]) for r in shipped["RelationVersions"][0]["Relations"]}
    assert filled == {(r["SourceEntity"], r["Alias"]) for r in relations}


def test_a_join_scope_naming_no_field_is_an_error(ft: Path) -> None:
    source = ft / "rc00001" / "Source.json"
    document = json.loads(source.read_text(encoding="utf-8"))
    document["joinScope"] = ["periodeid"]  # a field of several FT entities
    source.write_text(json.dumps(document), encoding="utf-8")
    assert load_registers(ft.parent, previous_relations={}).ok
    document["joinScope"] = ["periodeid", "Valgmappe"]
    source.write_text(json.dumps(document), encoding="utf-8")
    rendered = load_registers(ft.parent, previous_relations={}).render()
    assert "joinScope names 'Valgmappe', which no entity of the datamodel has" in rendered
    document["joinScope"] = "periodeid"  # not a list: the annex schema refuses it
    source.write_text(json.dumps(document), encoding="utf-8")
    assert not load_registers(ft.parent, previous_relations={}).ok
