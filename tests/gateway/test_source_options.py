"""Source.json options: typed per kind, checked by ``gateway validate``, one spelling.

Each kind declares its options in ``resolvers/<kind>/options.py``; the descriptor loading asks
the kind (through the registry) to check them: a problem is an error of the register (it is
not loaded), an old spelling a warning.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.cli import main
from gateway.dls.descriptors import Report, load_registers
from gateway.sources.kinds import event_entities, kinds
from gateway.sources.options import Option, OptionSet
from resolvers.odata import options as odata_options
from resolvers.valg_sftp import options as valg_options
from resolvers.volby_xml import options as volby_options
from resolvers.wahldaten_csv import options as wahldaten_options
from tests.support import REGISTERS


def _source_json(register: str) -> dict[str, Any]:
    (rc,) = [p for p in (REGISTERS / register).iterdir() if p.name.startswith("rc")]
    loaded: dict[str, Any] = json.loads((rc / "Source.json").read_text("utf-8"))
    return loaded


def _copy(tmp_path: Path, register: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of a shipped register whose Source.json ``edit`` changed."""
    target = tmp_path / "registers" / register
    shutil.copytree(REGISTERS / register, target)
    (rc,) = [p for p in target.iterdir() if p.name.startswith("rc")]
    document = _source_json(register)
    edit(document)
    (rc / "Source.json").write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    return target


def _lines(report: Report, severity: str) -> list[str]:
    return [m.problem for m in report.messages if m.severity == severity]


# -- the declarations -----------------------------------------------------------------------


def test_an_option_set_checks_types_and_names_the_option() -> None:
    declared = OptionSet(
        "test",
        [
            Option("pageSize", "integer", 100, positive=True),
            Option("ratio", "number", 0.5, minimum=0),
            Option("names", "array", [], items="string"),
            Option("url", "string", required=True),
        ],
    )
    assert declared.problems({"url": "x"}) == []
    assert declared.problems({"url": "x", "pageSize": True, "ratio": -1, "names": [1]}) == [
        "option 'pageSize' must be an integer, not true",
        "option 'ratio' must be at least 0, not -1",
        "option 'names' must list string values, not 1",
    ]
    assert declared.problems({"pageSize": 0}) == [
        "option 'pageSize' must be greater than 0, not 0",
        "option 'url' is required (test)",
    ]
    values = declared.values({"url": "x", "pageSize": None})
    assert values == {"pageSize": 100, "ratio": 0.5, "names": [], "url": "x"}


def test_an_old_spelling_means_the_name_and_the_later_key_wins() -> None:
    declared = OptionSet("test", [Option("readTimeout", "number", 60, aliases=("read_timeout",))])
    assert declared.values({"read_timeout": 5})["readTimeout"] == 5
    # Source.json first, an override after it: the override wins whatever its spelling.
    assert declared.values({"readTimeout": 60, "read_timeout": 0.2})["readTimeout"] == 0.2
    assert declared.values({"read_timeout": 0.2, "readTimeout": 60})["readTimeout"] == 60
    assert declared.deprecated({"read_timeout": 5, "readTimeout": 1}) == [
        "option 'read_timeout' is an old spelling: write 'readTimeout'"
    ]


@pytest.mark.parametrize("register", ["FT", "VALG", "CZ", "CZPREZ", "DE"])
def test_every_shipped_register_passes_its_kind_check_without_warnings(register: str) -> None:
    source = _source_json(register)
    kind = kinds()[source["kind"]]
    assert kind.check_options(source) == []
    assert kind.warn_options(source) == []


def test_every_kind_declares_its_checks() -> None:
    declared = {name: kind.check_options.__module__ for name, kind in kinds().items()}
    assert declared == {
        "odata": "resolvers.odata.options",
        "valg-sftp": "resolvers.valg_sftp.options",
        "volby-xml": "resolvers.volby_xml.options",
        "wahldaten-csv": "resolvers.wahldaten_csv.options",
    }


def test_the_parsed_options_keep_the_adapters_defaults() -> None:
    odata = odata_options.parse({"url": "http://x/api"})
    assert (odata.root, odata.ttl, odata.page_size, odata.max_filter_length) == (
        "http://x/api/",
        300.0,
        100,
        1800,
    )
    assert odata.filter_functions == {"substringof", "startswith"}
    # No FT specifics in the kind: no change events and UTC unless the register says so.
    assert odata.change_field is None
    assert odata.time_zone == ZoneInfo("UTC")
    ft = odata_options.parse(_source_json("FT"))
    assert ft.change_field == "opdateringsdato"
    assert ft.time_zone == ZoneInfo("Europe/Copenhagen")
    valg = valg_options.parse({})
    assert (valg.host, valg.port, valg.known_hosts, valg.read_timeout) == (
        "data.valg.dk",
        22,
        "",
        60,
    )
    assert (valg.content_cache_bytes, valg.max_file_bytes) == (128 * 2**20, 64 * 2**20)
    assert valg.encryption_algs[0] == "aes128-gcm@openssh.com"
    volby = volby_options.parse(_source_json("CZ"))
    assert (volby.ttl, volby.concurrency, volby.max_bytes) == (60.0, 4, 64 * 2**20)
    assert volby_options.parse({**_source_json("CZ"), "max_bytes": 10}).max_bytes == 10
    de = wahldaten_options.parse(_source_json("DE"))
    assert (de.urls, de.directory, de.ttl, de.file_ttl) == ((), "data/de", 10.0, 3600.0)
    assert wahldaten_options.parse({"url": "http://x/", "fileTtl": None}).file_ttl is None


def test_valg_reads_both_spellings() -> None:
    shipped = _source_json("VALG")
    assert "knownHosts" in shipped
    assert "known_hosts" not in shipped
    old = valg_options.parse({"known_hosts": "line", "read_timeout": 0.2, "max_file_bytes": 7})
    new = valg_options.parse({"knownHosts": "line", "readTimeout": 0.2, "maxFileBytes": 7})
    assert old == new
    # A replica's override (old spelling) after the shipped Source.json (new spelling).
    merged = valg_options.parse({**shipped, "known_hosts": "[127.0.0.1]:2222 ssh-ed25519 AAAA"})
    assert merged.known_hosts.startswith("[127.0.0.1]:2222")


def test_valg_downloads_are_limited_once_by_the_guard() -> None:
    # The former second limit of downloads is read as the guard's concurrency, with a warning.
    assert "maxParallelDownloads" not in _source_json("VALG")
    assert valg_options.guarded({"max_parallel_downloads": 2}) == {"concurrency": 2}
    assert valg_options.guarded({"maxParallelDownloads": 2, "concurrency": 3}) == {"concurrency": 3}
    assert valg_options.guarded({"readTimeout": 1}) == {"readTimeout": 1}
    assert valg_options.warnings({"maxParallelDownloads": 2}) == [
        "option 'maxParallelDownloads' is an old spelling: write 'concurrency' (listings and "
        "downloads at once, one limit)"
    ]


def test_odata_without_change_field_has_no_change_events() -> None:
    report = load_registers(REGISTERS / "FT", overrides={"FT": {"changeField": None}})
    assert report.ok, report.render()
    assert event_entities(report.registers[0]) == []
    report = load_registers(REGISTERS / "FT")
    assert "Aktør" in event_entities(report.registers[0])


# -- gateway validate -----------------------------------------------------------------------


def test_validate_warns_about_old_spellings_and_loads_the_register(tmp_path: Path) -> None:
    def old_spelling(document: dict[str, Any]) -> None:
        document["read_timeout"] = document.pop("readTimeout")
        document["known_hosts"] = document.pop("knownHosts")

    folder = _copy(tmp_path, "VALG", old_spelling)
    # VALG's relations name FT's channel: FT beside it.
    (folder.parent / "FT").symlink_to(REGISTERS / "FT")
    report = load_registers(folder.parent)
    assert report.ok, report.render()
    assert [r.name for r in report.registers] == ["FT", "VALG"]
    assert sorted(_lines(report, "warning")) == [
        "option 'known_hosts' is an old spelling: write 'knownHosts'",
        "option 'read_timeout' is an old spelling: write 'readTimeout'",
    ]


def test_nested_options_old_spellings_are_read_with_a_warning(tmp_path: Path) -> None:
    def old_spelling(document: dict[str, Any]) -> None:
        model = document["datamodel"]
        model["context_fields"] = model.pop("contextFields")
        councils = document["documents"]["councils"]
        councils["district_endpoint"] = councils.pop("districtEndpoint")
        councils["never_set"] = councils.pop("neverSet")

    old = load_registers(_copy(tmp_path / "old", "CZ", old_spelling))
    new = load_registers(REGISTERS / "CZ")
    assert old.ok, old.render()
    assert sorted(_lines(old, "warning")) == [
        "option 'datamodel.context_fields' is an old spelling: write 'datamodel.contextFields'",
        "option 'documents.councils.district_endpoint' is an old spelling: write "
        "'documents.councils.districtEndpoint'",
        "option 'documents.councils.never_set' is an old spelling: write "
        "'documents.councils.neverSet'",
    ]
    assert _lines(new, "warning") == []
    # Read the same: the same entities, fields and keys, and the same plan of documents.
    (was,), (now,) = old.registers, new.registers
    assert was.datamodel.entities.keys() == now.datamodel.entities.keys()
    for name, entity in now.datamodel.entities.items():
        assert was.datamodel.entities[name].key == entity.key
        assert list(was.datamodel.entities[name].by_source) == list(entity.by_source)
    assert volby_options.parse(was.source) == volby_options.parse(now.source)


@pytest.mark.parametrize(
    ("register", "edit", "expected"),
    [
        ("FT", {"pageSize": "100"}, "option 'pageSize' must be an integer, not '100'"),
        ("FT", {"timeZone": "Europe/Nowhere"}, "option 'timeZone' names no known time zone"),
        ("FT", {"filterFunctions": ["substringof", "matches"]}, "unknown functions ['matches']"),
        ("VALG", {"read_timeout": 0}, "option 'readTimeout' must be greater than 0, not 0"),
        ("VALG", {"port": 70000}, "option 'port' must be a TCP port (1–65535), not 70000"),
        ("CZ", {"elections": []}, "option 'elections' must list at least one election"),
        ("CZ", {"maxBytes": -1}, "option 'maxBytes' must be greater than 0, not -1"),
        ("DE", {"directory": None}, "options 'url' and 'directory' are both missing"),
        ("DE", {"fileTtl": "hour"}, "option 'fileTtl' must be a number, not 'hour'"),
    ],
)
def test_a_bad_option_is_an_error_of_its_register(
    tmp_path: Path, register: str, edit: dict[str, Any], expected: str
) -> None:
    report = load_registers(_copy(tmp_path, register, lambda d: d.update(edit)))
    assert not report.ok
    assert report.registers == []
    (problem,) = _lines(report, "error")
    assert expected in problem
    (message,) = report.errors
    assert message.file.endswith("Source.json")
    assert message.fix.startswith("see resolvers.")


def test_an_override_is_checked_too() -> None:
    report = load_registers(REGISTERS / "FT", overrides={"FT": {"url": 8123}})
    assert _lines(report, "error") == ["option 'url' must be a string, not 8123"]


def test_an_unknown_kind_is_an_error_listing_the_installed_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(tmp_path, "FT", lambda d: d.update(kind="odata4"))
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "unknown source kind 'odata4'" in out
    assert "use one of: odata, valg-sftp, volby-xml, wahldaten-csv" in out


def test_the_source_schema_lists_no_kinds() -> None:
    # The kinds come from the registry (entry points), never from the annex schema.
    text = (
        Path(__file__).resolve().parents[2] / "gateway/dls/annex_schemas/Source.schema.json"
    ).read_text("utf-8")
    schema = json.loads(text)
    assert "enum" not in schema["properties"]["kind"]
    for name in kinds():
        assert f'"{name}"' not in text
