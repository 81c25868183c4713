"""The shipped DE register: descriptors, datamodel, relations, and Source.json."""

from __future__ import annotations

import re

import pytest

from gateway.dls.descriptors import load_registers
from gateway.sources.cache import Cache
from gateway.sources.kinds import kind
from gateway.sources.port import Services
from resolvers.wahldaten_csv.adapter import WahldatenSource
from tests.resolvers.wahldaten_csv.model import REGISTER_DIR, ROOT, datamodel, register, source_json
from tests.resolvers.wahldaten_csv.queries import ask
from tests.resolvers.wahldaten_csv.raw import DATASETS, elections, header

ENTITY_OF = {
    "Wahlparameter": "Wahlparameter",
    "Wahlgebietseinteilungen": "Wahlgebiet",
    "Stimmzettel": "Stimmzettel",
    "Kandidaten": "Kandidat",
    "Wahlergebnisse": "Wahlergebnis",
}


def test_the_register_validates_without_errors_or_warnings() -> None:
    report = load_registers(REGISTER_DIR)
    assert report.messages == [], report.render()
    (de,) = report.registers
    assert (de.name, de.rc, de.default_level) == ("DE", "rc00005", 0)
    relations = de.relation_versions["1"]
    assert len(relations) == 21
    aliases = {(r.source_entity, r.alias) for r in relations}
    assert {
        ("Wahlergebnis", "Stimmen"),
        ("Stimme", "Stimmzettel"),
        ("Wahlergebnis", "Wahlgebiet"),
    } <= aliases


def test_entities_and_their_graphql_names() -> None:
    model = datamodel()
    assert {e.graphql_name for e in model.entities.values()} == {
        "DE_Wahlparameter", "DE_Wahlgebiet", "DE_Stimmzettel", "DE_Kandidat", "DE_Wahlergebnis",
        "DE_Stimme",
    }  # fmt: skip
    stimme = model.entities["Stimme"]
    assert {"kennung", "position", "kandidatnummer", "anzahl"} <= set(stimme.by_name)
    ergebnis = model.entities["Wahlergebnis"]
    assert not any(re.fullmatch(r"[DF]\d+", f.source) for f in ergebnis.fields)
    for entity in model.entities.values():
        assert entity.key[0] == "wahl"
        assert entity.by_name["wahl"].nullable is False


@pytest.mark.parametrize("raw", elections(), ids=lambda r: r.folder.name)
def test_every_recorded_column_is_a_field(raw: object) -> None:
    model = datamodel()
    for dataset in DATASETS:
        path = raw.file(dataset)  # type: ignore[attr-defined]
        if path is None:
            continue
        entity = model.entities[ENTITY_OF[dataset]]
        columns = [c for c in header(path) if not re.fullmatch(r"[DF]\d+(_\d+)?", c)]
        assert [c for c in columns if c not in entity.by_source] == [], path.name


def test_to_one_relations_point_at_unique_fields() -> None:
    (de,) = load_registers(REGISTER_DIR).registers
    model = de.datamodel
    unique = {("Wahlparameter", "wahl"), ("Wahlgebiet", "bezirk_id"), ("Wahlergebnis", "bezirk_id")}
    unique |= {("Stimmzettel", "stimmzettel_id"), ("Kandidat", "kandidat_id")}
    for relation in de.relation_versions["1"]:
        assert relation.source_field in model.entities[relation.source_entity].by_source
        if not relation.to_many:
            assert (relation.target_entity, relation.target_field) in unique, relation


async def test_the_shipped_source_json_reads_the_recorded_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = source_json()
    assert options["kind"] == "wahldaten-csv"
    assert kind("wahldaten-csv").source is WahldatenSource
    # "directory" is relative to the working directory: the project root.
    monkeypatch.chdir(ROOT)
    cache = Cache()
    source = WahldatenSource(register(options), options, Services(cache))
    try:
        page = await ask(source, "Wahlparameter")
        assert sorted(r["wahl"] for r in page.rows) == sorted(raw.wahl for raw in elections())
    finally:
        await source.aclose()
        await cache.close()
