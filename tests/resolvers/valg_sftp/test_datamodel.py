"""The VALG datamodel from the upstream's own JSON Schemas (Windows-1252, not UTF-8), in the
recorded archives' ``Snitfladebeskrivelser/`` (data/valg/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.dls.jsonschema import load_json_schemas
from gateway.model.datamodel import Datamodel, ScalarType
from gateway.model.errors import DescriptorError
from gateway.model.naming import graphql_name
from resolvers.valg_sftp.options import entity_paths
from tests.resolvers.valg_sftp.conftest import RC

SCHEMAS = RC / "2. Datamodel" / "Snitfladebeskrivelser"


def test_schema_files_are_cp1252_not_utf8() -> None:
    raw = (SCHEMAS / "Valggeografi" / "Afstemningsomraade.schema.json").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "Præsenteret i UTC" in raw.decode("cp1252")


def test_descriptions_are_decoded_from_cp1252(datamodel: Datamodel) -> None:
    field = datamodel.entities["Afstemningsområde"].by_source["OprettetUtc"]
    assert "Præsenteret i UTC" in field.description


def test_root_entities_users_look_for(datamodel: Datamodel) -> None:
    names = {entity.graphql_name for entity in datamodel.entities.values()}
    expected = {
        "VALG_Valg", "VALG_Valglandsdel", "VALG_Region", "VALG_Kommune", "VALG_Storkreds",
        "VALG_Opstillingskreds", "VALG_Afstemningsomraade", "VALG_Valgresultat",
        "VALG_Valgdeltagelse", "VALG_Kandidatdata", "VALG_Kandidat", "VALG_Mandatfordeling",
        "VALG_Partistemmefordeling", "VALG_Valgresultat_IndenforParti",
        "VALG_Valgresultat_UdenforParti", "VALG_Valgresultat_Kandidatlister",
    }  # fmt: skip
    assert expected <= names


def test_every_entity_has_its_election_and_a_key(datamodel: Datamodel) -> None:
    for entity in datamodel.entities.values():
        assert "Valgmappe" in entity.by_name, entity.name
        assert entity.key == ("Noegle",)
        assert not entity.by_name["Noegle"].nullable


def test_field_names_keep_source_names_transliterated(datamodel: Datamodel) -> None:
    result = datamodel.entities["Valgresultat"]
    for source in ("AfstemningsområdeDagiId", "UgyldigeStemmerUdoverBlanke"):
        assert result.by_source[source].name == graphql_name(source)
    assert result.by_source["AfstemningsområdeDagiId"].name == "AfstemningsomraadeDagiId"
    turnout = datamodel.entities["Valgdeltagelse_Valgdeltagelse"]
    # The misspelled source name (double r) is kept as it is.
    assert "AntalStemmeberretigedeVaelgere" in turnout.by_name


def test_types_differ_across_datasets_as_the_schemas_say(datamodel: Datamodel) -> None:
    def kind(entity: str, field: str) -> ScalarType:
        return datamodel.entities[entity].by_source[field].type

    assert kind("Valgresultat", "AfstemningsområdeDagiId") is ScalarType.INT
    assert kind("Valgdeltagelse", "AfstemningsområdeDagiId") is ScalarType.STRING
    assert kind("Valgresultat", "OpstillingskredsDagiId") is ScalarType.INT
    assert kind("Partistemmefordeling", "OpstillingskredsDagiId") is ScalarType.STRING
    assert kind("Kandidatdata", "Storkredsnummer") is ScalarType.STRING
    assert kind("Partistemmefordeling", "Storkredsnummer") is ScalarType.INT
    assert kind("Kommune", "Dagi_id") is ScalarType.STRING
    assert kind("Valgresultat", "Valgdag") is ScalarType.DATE
    assert kind("Valgresultat", "FrigivelsesTidspunktUTC") is ScalarType.DATETIME
    assert kind("Valgdeltagelse_Valgdeltagelse", "Tidspunkt") is ScalarType.DATETIME


def test_nested_objects_are_flattened(datamodel: Datamodel) -> None:
    area = datamodel.entities["Afstemningsområde"]
    assert area.by_source["Afstemningssted.Adgangsadresse.Adressebetegnelse"].name == (
        "Afstemningssted_Adgangsadresse_Adressebetegnelse"
    )


def test_union_of_shapes_makes_missing_properties_nullable(datamodel: Datamodel) -> None:
    result = datamodel.entities["Valgresultat"]
    # FA-only and KV/RV-only properties exist, nullable; required in every shape stays non-null.
    assert result.by_source["StemmerForJa"].nullable
    assert result.by_source["GodkendelsesDatoUTC"].nullable
    assert not result.by_source["AfgivneStemmer"].nullable


def test_candidates_of_every_shape_are_one_entity(
    datamodel: Datamodel, source_json: dict[str, Any]
) -> None:
    candidate = datamodel.entities["Kandidat"]
    for source in ("Id", "Navn", "Stemmeseddelnavn", "Stilling", "BopaelPaaStemmeseddel"):
        assert source in candidate.by_source
    # Handed down from the party and the document, for "party Ø in storkreds Fyn".
    for source in ("Partibogstav", "Storkreds", "Bogstavbetegnelse", "Kommune"):
        assert source in candidate.by_source
    paths = entity_paths(source_json["datamodel"], "Kandidat")
    assert set(paths) == {
        ("Kandidatdata", ("IndenforParti", "Kandidater")),
        ("Kandidatdata", ("UdenforParti",)),
        ("Kandidatdata", ("Kandidatlister", "Kandidater")),
    }


def test_entity_paths_cover_every_schema_entity(
    datamodel: Datamodel, source_json: dict[str, Any]
) -> None:
    options = source_json["datamodel"]
    for name, entity in datamodel.entities.items():
        if name == "Valg":
            continue
        paths = entity_paths(options, name)
        assert paths, name
        if any(path for _, path in paths):
            assert "ForaelderNoegle" in entity.by_name
    with pytest.raises(KeyError):
        entity_paths(options, "Nothing_Here")


def test_arrays_of_scalars_become_value_entities(datamodel: Datamodel) -> None:
    ids = datamodel.entities["Kandidatdata_Valgforbund_KandidatlisteId"]
    assert ids.by_source["Vaerdi"].type is ScalarType.STRING


def _write(folder: Path, name: str, document: Any) -> None:
    (folder / name).write_bytes(json.dumps(document).encode("cp1252"))


def _options(schema: str) -> dict[str, Any]:
    return {"key": [], "documents": [{"name": "Doc", "schemas": [schema]}]}


def test_broken_schema_is_a_descriptor_error(tmp_path: Path) -> None:
    (tmp_path / "bad.schema.json").write_bytes(b"{not json")
    with pytest.raises(DescriptorError, match=r"bad\.schema\.json"):
        load_json_schemas(tmp_path, "X", _options("bad.schema.json"))


def test_remote_refs_and_cycles_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "remote.schema.json", {"type": "object", "properties": {
        "a": {"$ref": "http://example.org/x.json"}}})  # fmt: skip
    with pytest.raises(DescriptorError, match="only local"):
        load_json_schemas(tmp_path, "X", _options("remote.schema.json"))
    cycle = {"$ref": "#/definitions/A"}
    _write(tmp_path, "cycle.schema.json", {
        "type": "object", "properties": {"a": cycle}, "definitions": {"A": cycle}})  # fmt: skip
    with pytest.raises(DescriptorError, match="cycle"):
        load_json_schemas(tmp_path, "X", _options("cycle.schema.json"))


def test_missing_documents_list_is_a_descriptor_error(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match="documents"):
        load_json_schemas(tmp_path, "X", {})
