"""A DLS delivery as the DLS description writes it (``delivery/``): validated, generated, served.

The delivery has two registers (BBR rc00018, DAR rc00022) with a cross-register association,
annexes in the value styles of the description's examples (``"SecurityLevel": "2"``,
``"TargetRc": "22"`` and ``"rc00018"``, ``…Type`` entity names) and no ``Source.json``.
Expected values are read from the delivery's own files.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.dls.descriptors import load_registers, normalise_rc
from gateway.http.app import load_gateway
from gateway.http.auth import AuthSettings
from gateway.http.config import Settings
from tests.support import gateway_client

DELIVERY = Path(__file__).parent / "delivery"
XS = "{http://www.w3.org/2001/XMLSchema}"
CHANNELS = {"BBR": "rc00018", "DAR": "rc00022"}


def _channel(root: Path, register: str) -> Path:
    return root / "Register" / register / CHANNELS[register]


def _xsd(root: Path, register: str) -> ET.Element:
    return ET.parse(_channel(root, register) / "2. Datamodel" / f"1.0.0.{register}.xsd").getroot()


def _xsd_entities(root: Path, register: str) -> dict[str, list[str]]:
    """Entity → field names, read from the XSD (complexType name minus ``Type``)."""
    out = {}
    for complex_type in _xsd(root, register).iter(f"{XS}complexType"):
        name = complex_type.get("name", "").removesuffix("Type")
        out[name] = [e.get("name", "") for e in complex_type.iter(f"{XS}element")]
    return out


def _xsd_codes(root: Path, register: str) -> dict[str, list[str]]:
    out = {}
    for simple_type in _xsd(root, register).findall(f"{XS}simpleType"):
        values = [e.get("value", "") for e in simple_type.iter(f"{XS}enumeration")]
        if values:
            out[simple_type.get("name", "")] = values
    return out


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _relations(root: Path, register: str) -> list[dict[str, Any]]:
    document = _json(_channel(root, register) / "2. Datamodel" / "Relations.json")
    newest = max(document["RelationVersions"], key=lambda v: int(v["RelationVersionNumber"]))
    relations: list[dict[str, Any]] = newest["Relations"]
    return relations


def _levels(root: Path, register: str) -> dict[str, int]:
    """Entity → its level per Security_Model.json (default for the rest)."""
    model = _json(_channel(root, register) / "3. Security" / "Security_Model.json")
    default = int(model.get("DefaultSecurity", 0))
    levels = dict.fromkeys(_xsd_entities(root, register), default)
    for specific in model.get("SpecificSecurity", []):
        for entity in specific.get("Entities", []):
            levels[entity.removesuffix("Type")] = int(specific["SecurityLevel"])
    return levels


@pytest.fixture
def delivery(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of the delivery."""
    copy = tmp_path / "delivery"
    shutil.copytree(DELIVERY, copy)
    return copy


def _problems(root: Path, **kwargs: Any) -> str:
    report = load_registers(root, previous_relations={}, **kwargs)
    return "\n".join(str(m) for m in report.errors)


# --------------------------------------------------------------------------- as delivered


def test_the_delivery_validates_with_no_error_and_no_source_json() -> None:
    assert not list(DELIVERY.rglob("Source.json"))
    report = load_registers(DELIVERY, previous_relations={})
    assert report.errors == [], report.render()
    assert sorted(r.name for r in report.registers) == sorted(CHANNELS)
    for register in report.registers:
        assert register.rc == CHANNELS[register.name]
        assert register.source == {}


def test_every_entity_field_code_relation_and_level_is_in_the_schema() -> None:
    gateway = load_gateway(Settings(registers_dir=DELIVERY))
    sdl = gateway.schema_for("/graphql").as_str()
    registers = {r.name: r for r in gateway.report.registers}
    for name in CHANNELS:
        register = registers[name]
        entities = _xsd_entities(DELIVERY, name)
        assert sorted(register.datamodel.entities) == sorted(entities)
        levels = _levels(DELIVERY, name)
        for entity_name, fields in entities.items():
            entity = register.datamodel.entities[entity_name]
            block = sdl.split(f"type {entity.graphql_name} ", 1)[1].split("\n}", 1)[0]
            level = levels[entity_name]
            assert block.startswith(f"@securityLevel(level: {level})"), block[:80]
            assert register.entity_level(entity_name) == level
            for field in fields:
                assert f"  {field}" in block, (entity_name, field)
        for values in _xsd_codes(DELIVERY, name).values():
            for value in values:
                assert value in sdl, value
        for relation in _relations(DELIVERY, name):
            source = register.datamodel.entities[relation["SourceEntity"]]
            block = sdl.split(f"type {source.graphql_name} ", 1)[1].split("\n}", 1)[0]
            assert f"  {relation['Alias']}" in block, relation["Alias"]
            target = next(
                r for r in registers.values() if r.rc == normalise_rc(relation["TargetRc"])
            )
            assert relation["TargetEntity"] in target.datamodel.entities


async def test_a_register_without_source_json_is_served_and_says_no_upstream() -> None:
    register = next(r for r in load_registers(DELIVERY).registers if r.name == "BBR")
    async with gateway_client(DELIVERY, {}, auth=AuthSettings.demo()) as client:
        entity = register.datamodel.entities["Bygning"]
        field = entity.key[0]
        level = _levels(DELIVERY, "BBR")["Bygning"]
        response = await client.post(
            "/graphql",
            json={"query": f"{{ {entity.graphql_name} {{ nodes {{ {field} }} }} }}"},
            headers={"X-API-Key": f"demo-level-{level}"},
        )
        answer = response.json()
        assert answer.get("data") in (None, {entity.graphql_name: None})
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert "no upstream configured" in error["message"]
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["upstreams"]["BBR"]["configured"] is False


# --------------------------------------------------------------------------- annex defects


def test_an_excel_file_in_general_is_an_error(delivery: Path) -> None:
    (delivery / "Register" / "BBR" / "General" / "Begreber.xlsx").write_bytes(b"PK\x03\x04")
    assert "Begreber.xlsx" in _problems(delivery)
    (delivery / "Register" / "BBR" / "General" / "Begreber.xlsx").unlink()
    (delivery / "Register" / "BBR" / "General" / "Begreber.docx").write_bytes(b"PK\x03\x04")
    assert _problems(delivery) == ""


def test_a_missing_predefined_filedownloads_annex_is_an_error(delivery: Path) -> None:
    annex = (
        _channel(delivery, "DAR") / "4. Tabular_data" / "Automated_Predefined_Filedownloads.json"
    )
    annex.unlink()
    assert "Automated_Predefined_Filedownloads.json" in _problems(delivery)


def test_an_unknown_version_format_is_an_error(delivery: Path) -> None:
    metadata = delivery / "Register" / "DAR" / "General" / "DLS_metadata.json"
    metadata.write_text('{"version_format": "9.9"}', encoding="utf-8")
    problems = _problems(delivery)
    assert "version_format" in problems
    assert "9.9" in problems


def test_no_default_and_no_specific_security_is_an_error(delivery: Path) -> None:
    model = _channel(delivery, "DAR") / "3. Security" / "Security_Model.json"
    model.write_text('{"SpecificSecurity": []}', encoding="utf-8")
    assert "Security_Model.json" in _problems(delivery)


@pytest.mark.parametrize(
    ("annex", "text"),
    [
        ("Automated_Wfs.json", '{"garbage": true}'),
        ("Automated_Geographical_Filedownloads.json", "[1, 2, 3]"),
        ("Automated_Pregenerated_Filedownloads.json", '[{"Frequency": "x"}]'),
    ],
)
def test_every_tabular_annex_is_read_and_checked(delivery: Path, annex: str, text: str) -> None:
    (_channel(delivery, "DAR") / "4. Tabular_data" / annex).write_text(text, encoding="utf-8")
    assert annex in _problems(delivery)


def test_a_relation_added_to_an_older_relation_version_is_an_error(delivery: Path) -> None:
    path = _channel(delivery, "DAR") / "2. Datamodel" / "Relations.json"
    published = _json(path)
    second = json.loads(json.dumps(published["RelationVersions"][0]))
    second["RelationVersionNumber"] = "2"
    published["RelationVersions"].append(second)
    changed = json.loads(json.dumps(published))
    extra = dict(changed["RelationVersions"][0]["Relations"][0], Alias="ogsaaVejen")
    changed["RelationVersions"][0]["Relations"].append(extra)
    path.write_text(json.dumps(changed), encoding="utf-8")
    report = load_registers(delivery, previous_relations={"DAR": published})
    problems = "\n".join(str(m) for m in report.errors)
    assert "ogsaaVejen" in problems
    assert "not the newest" in problems
    # The same relation added to the newest RelationVersion is fine.
    changed["RelationVersions"][0]["Relations"].pop()
    changed["RelationVersions"][1]["Relations"].append(extra)
    path.write_text(json.dumps(changed), encoding="utf-8")
    assert load_registers(delivery, previous_relations={"DAR": published}).ok


def test_a_target_rc_version_the_target_does_not_have_leaves_the_relation_out(
    delivery: Path,
) -> None:
    path = _channel(delivery, "DAR") / "2. Datamodel" / "Relations.json"
    document = _json(path)
    bad = document["RelationVersions"][0]["Relations"][1]
    bad["TargetRcVersion"] = "7"
    path.write_text(json.dumps(document), encoding="utf-8")
    report = load_registers(delivery, previous_relations={})
    problems = "\n".join(str(m) for m in report.errors)
    assert "TargetRcVersion" in problems
    assert "7" in problems
    dar = next(r for r in report.registers if r.name == "DAR")
    kept = {r.alias for r in dar.relation_versions["1"]}
    expected = {r["Alias"] for r in document["RelationVersions"][0]["Relations"]} - {bad["Alias"]}
    assert kept == expected


# --------------------------------------------------------------------------- versions


def _drop_field(channel: Path, register: str, version: str, entity: str) -> str:
    """Remove the last field of ``entity`` from the XSD of ``version``; return its name."""
    path = channel / "2. Datamodel" / f"{version}.{register}.xsd"
    text = path.read_text(encoding="utf-8")
    start = text.index(f'<xs:complexType name="{entity}Type">')
    end = text.index("</xs:sequence>", start)
    last = text.rindex("<xs:element ", start, end)
    name = text[last:].split('name="', 1)[1].split('"', 1)[0]
    close = text.index("</xs:element>", last) + len("</xs:element>")
    path.write_text(text[:last] + text[close:], encoding="utf-8")
    return name


def test_a_removed_field_is_a_breaking_change_against_the_previous_version(
    delivery: Path, tmp_path: Path
) -> None:
    previous = tmp_path / "previous"
    shutil.copytree(delivery, previous)
    removed = _drop_field(_channel(delivery, "BBR"), "BBR", "1.0.0", "Bygning")
    report = load_registers(delivery, previous_relations={}, previous=previous)
    problems = "\n".join(str(m) for m in report.errors)
    assert removed in problems
    assert "MAJOR" in problems
    # Without the comparison the changed model is valid by itself.
    assert load_registers(delivery, previous_relations={}).ok


def _second_version(channel: Path, target: Path, register: str) -> None:
    """The to-be model 2.0.0 next to 1.0.0: a copy of the pair in ``target``."""
    for suffix in ("xsd", "xmi"):
        source = channel / "2. Datamodel" / f"1.0.0.{register}.{suffix}"
        text = source.read_text(encoding="utf-8").replace("1.0.0", "2.0.0")
        (target / "2. Datamodel").mkdir(parents=True, exist_ok=True)
        (target / "2. Datamodel" / f"2.0.0.{register}.{suffix}").write_text(text, encoding="utf-8")


def _served(root: Path) -> dict[str, list[str]]:
    gateway = load_gateway(Settings(registers_dir=root))
    return {
        path: sorted(r.datamodel.version for r in spec.registers.values())
        for path, spec in gateway.endpoints().items()
        if path.startswith("/BBR/") or path == "/graphql"
    }


def test_two_replication_channels_are_served_side_by_side(delivery: Path) -> None:
    channel = _channel(delivery, "BBR")
    new = channel.parent / "rc00019"
    shutil.copytree(channel, new)
    for suffix in ("xsd", "xmi"):
        (new / "2. Datamodel" / f"1.0.0.BBR.{suffix}").unlink()
    _second_version(channel, new, "BBR")
    removed = _drop_field(new, "BBR", "2.0.0", "Bygning")
    report = load_registers(delivery, previous_relations={})
    assert report.ok, report.render()
    served = _served(delivery)
    assert served["/BBR/v1"] == ["1.0.0"]
    assert served["/BBR/v2"] == ["2.0.0"]
    gateway = load_gateway(Settings(registers_dir=delivery))
    old = gateway.schema_for("/BBR/v1").as_str()
    now = gateway.schema_for("/BBR/v2").as_str()
    assert f"  {removed}" in old
    assert f"  {removed}" not in now
    newest = next(r for r in gateway.report.registers if r.name == "BBR")
    assert newest.datamodel.version == "2.0.0"
    assert removed not in [f.name for f in newest.datamodel.entities["Bygning"].fields]


def test_one_channel_with_as_is_and_to_be_models_serves_both(delivery: Path) -> None:
    channel = _channel(delivery, "BBR")
    _second_version(channel, channel, "BBR")
    report = load_registers(delivery, previous_relations={})
    assert report.ok, report.render()
    served = _served(delivery)
    assert served["/BBR/v1"] == ["1.0.0"]
    assert served["/BBR/v2"] == ["2.0.0"]


def test_the_same_major_in_two_channels_is_an_error(delivery: Path) -> None:
    channel = _channel(delivery, "BBR")
    shutil.copytree(channel, channel.parent / "rc00019")
    assert "datamodel version 1" in _problems(delivery)


async def test_the_catalogue_names_every_external_version(delivery: Path) -> None:
    channel = _channel(delivery, "BBR")
    _second_version(channel, channel, "BBR")
    async with gateway_client(delivery, {}, auth=AuthSettings.demo()) as client:
        response = await client.get("/catalog.json", headers={"X-API-Key": "demo-level-3"})
        (bbr,) = [r for r in response.json()["registers"] if r["name"] == "BBR"]
        externals = [
            (v["number"], v["datamodelVersion"], v["endpoint"]) for v in bbr["externalVersions"]
        ]
        assert externals == [("1", "1.0.0", "/BBR/v1"), ("2", "2.0.0", "/BBR/v2")]
        # The served (newest) model's RelationVersion 1 is external version 2, and so are
        # its downloads.
        assert [v["endpoint"] for v in bbr["relationVersions"]] == ["/BBR/v2"]
        paths = [d["csv"] for e in bbr["entities"] for d in e["downloads"]]
        assert paths
        assert all(p.startswith("/BBR/v2/download/") for p in paths)
        missing = await client.get(paths[0].replace("/v2/", "/v7/"))
        assert missing.status_code == 404
