"""The quirks of the recorded volby.cz files (data/cz/: encodings, two timestamp styles, error
documents, newlines inside tags, typographic quotes), and hostile documents."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.model.errors import UpstreamInvalidError
from resolvers.volby_xml.parse import decode_xml, error_of, generated_at, parse_xml
from resolvers.volby_xml.rows import read_document
from tests.resolvers.volby_xml.conftest import DATA, register
from tests.resolvers.volby_xml.raw import children, council, local, party_votes, root_of

PRAGUE = ZoneInfo("Europe/Prague")


def read(path: Path, **context: str) -> dict[str, tuple[dict[str, object], ...]]:
    document = read_document(
        path.read_bytes(), register("CZ").datamodel, {"volby": "kv2014", **context}
    )
    assert document.error is None
    return dict(document.rows)


# --- 1. encodings -----------------------------------------------------------------------


def test_iso_8859_2_district_keeps_czech_letters() -> None:
    path = DATA / "kv2014" / "CZ0806.xml"
    assert path.read_bytes().startswith(b'<?xml version="1.0" encoding="iso-8859-2"?>')
    expected = [o.get("NAZEVZAST") for o in children(root_of(path), "OBEC")]
    names = [row["NAZEVZAST"] for row in read(path)["OBEC"]]
    assert names == expected
    assert "Čavisov" in names
    assert "Slezská Ostrava" in names


def test_utf8_bytes_declared_iso_8859_2_are_read_as_utf8() -> None:
    data = (DATA / "kv2014" / "vysledky.xml").read_bytes()
    assert b'encoding="iso-8859-2"' in data[:60]
    honoured = data.decode("iso-8859-2")
    assert "KĹ" in honoured  # what following the declaration would give
    text = decode_xml(data)
    assert text == data.decode("utf-8")
    rows = read(DATA / "kv2014" / "vysledky.xml")
    names = {row["NAZEV_STRANY"] for row in rows["VOLEBNI_STRANA"]}
    assert "Křesťanská a demokratická unie - Československá strana lidová" in names


def test_windows_1250_document_is_decoded() -> None:
    original = (DATA / "kv2022" / "obec_551082.xml").read_bytes()
    text = original.decode("utf-8").replace('encoding="utf-8"', 'encoding="windows-1250"', 1)
    cp1250 = text.encode("cp1250")
    assert cp1250 != original
    model = register("CZ").datamodel
    converted = read_document(cp1250, model, {"volby": "kv2022"}).rows
    assert converted == read_document(original, model, {"volby": "kv2022"}).rows
    surnames = {row["PRIJMENI"] for row in converted["ZASTUPITEL"]}
    assert {"Vrážel", "Kročil", "Hrdlička"} <= surnames


def test_byte_order_mark_and_bad_encodings() -> None:
    assert parse_xml(b"\xef\xbb\xbf<a x='\xc4\x8d'/>").get("x") == "č"
    with pytest.raises(UpstreamInvalidError, match="unknown XML encoding"):
        parse_xml(b'<?xml version="1.0" encoding="x-klingon"?><a/>')
    with pytest.raises(UpstreamInvalidError, match="not valid utf-8"):
        parse_xml(b'<?xml version="1.0" encoding="utf-8"?><a x="\xe8"/>')


# --- 2. timestamps ----------------------------------------------------------------------


def test_both_timestamp_styles_become_iso_8601_with_prague_offset() -> None:
    root_2014 = root_of(DATA / "kv2014" / "CZ0100.xml")
    day, clock = root_2014.get("DATUM_GENEROVANI", ""), root_2014.get("CAS_GENEROVANI", "")
    naive = dt.datetime.strptime(f"{day} {clock}", "%d/%m/%Y %H:%M:%S")
    expected_2014 = naive.replace(tzinfo=PRAGUE).isoformat()
    assert expected_2014.endswith("+02:00")  # September: summer time
    rows = read(DATA / "kv2014" / "CZ0100.xml")
    assert {row["DATUM_CAS_GENEROVANI"] for row in rows["OBEC"]} == {expected_2014}

    stamp = root_of(DATA / "prez2023" / "kolo-1_davka-1.xml").get("DATUM_CAS_GENEROVANI", "")
    winter = dt.datetime.fromisoformat(stamp).replace(tzinfo=PRAGUE).isoformat()
    assert winter.endswith("+01:00")
    assert generated_at({"DATUM_CAS_GENEROVANI": stamp}) == winter


def test_bad_timestamp_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamInvalidError):
        generated_at({"DATUM_GENEROVANI": "31/02/2014", "CAS_GENEROVANI": "10:00:00"})


# --- 3. newline inside the UCAST start tag -----------------------------------------------


def test_newline_inside_ucast_tag() -> None:
    path = DATA / "kv2022" / "obec_551082.xml"
    assert re.search(rb'ODEVZDANE_OBALKY="\d+"\n PLATNE_HLASY=', path.read_bytes())
    (ucast,) = read(path)["UCAST"]
    obec = council(path, "551082")
    expected = children(children(obec, "VYSLEDEK")[0], "UCAST")[0]
    assert ucast["PLATNE_HLASY"] == int(expected.get("PLATNE_HLASY", "")) == 89129
    assert ucast["ODEVZDANE_OBALKY"] == int(expected.get("ODEVZDANE_OBALKY", ""))


# --- 4./5. districts (OBVOD) and the city with its boroughs -------------------------------


def test_council_with_districts_keeps_parties_per_district() -> None:
    path = DATA / "kv2014" / "CZ0100.xml"
    rows = read(path)
    praha = council(path, "554782")
    assert len(children(praha, "OBVOD")) == 7
    parties = [r for r in rows["VOLEBNI_STRANA"] if r["KODZASTUP"] == "554782"]
    got = {(r["CIS_OBVODU"], r["POR_STR_HLAS_LIST"]): r["HLASY"] for r in parties}
    assert got == party_votes(praha)
    assert {r["CIS_OBVODU"] for r in parties} == set(range(1, 8))
    assert all(r["OBEC_ID"] is None and r["OBVOD_ID"] for r in parties)
    # The council-level result holds only the turnout.
    council_level = [r for r in rows["UCAST"] if r["OBEC_ID"] == "kv2014|554782"]
    assert len(council_level) == 1
    assert council_level[0]["CIS_OBVODU"] is None


def test_city_council_and_borough_councils_in_one_district() -> None:
    path = DATA / "kv2014" / "CZ0100.xml"
    kinds = [o.get("OZNAC_TYPU") for o in children(root_of(path), "OBEC")]
    rows = read(path, NUTS="CZ0100")["OBEC"]
    assert [r["OZNAC_TYPU"] for r in rows] == kinds
    assert kinds.count("OBEC") == 1
    assert kinds.count("MCMO") == 57
    assert {r["NUTS"] for r in rows} == {"CZ0100"}


# --- 7. error documents ---------------------------------------------------------------------


def test_recorded_error_document_with_code() -> None:
    data = (DATA / "kv_error" / "csu-okrsky-live-chyba-10.xml").read_bytes()
    document = read_document(data, register("CZ").datamodel, {"volby": "kv2022"})
    assert document.error is not None
    assert document.error.code == 10
    assert document.error.not_yet_available
    assert document.rows == {}


def test_error_document_with_text() -> None:
    # The form ČSÚ's parliamentary schema (ps_vysledky_okres.xsd) defines: CHYBA as text.
    xsd = ET.parse(DATA / "ps_xsd" / "ps_vysledky_okres.xsd").getroot()
    chyba = [e for e in xsd if e.get("name") == "CHYBA"]
    assert chyba
    assert [local(c.tag) for c in chyba[0]][-1] == "simpleType"
    data = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<VYSLEDKY_OKRES xmlns="http://www.volby.cz/ps/"'
        ' DATUM_CAS_GENEROVANI="2021-10-09T15:00:00"><CHYBA>Chybný  parametr</CHYBA>'
        "</VYSLEDKY_OKRES>"
    ).encode()
    error = error_of(parse_xml(data))
    assert error is not None
    assert error.code is None
    assert not error.not_yet_available
    assert error.describe() == "Chybný parametr"


# --- 10. quotes and double spaces --------------------------------------------------------


def test_entities_typographic_quotes_and_double_spaces_survive() -> None:
    path = DATA / "kv2014" / "CZ0806.xml"
    assert b"&quot;PRO \xc8AVISOV&quot;" in path.read_bytes()
    expected = {
        p.get("NAZEV_STRANY")
        for o in children(root_of(path), "OBEC")
        for r in children(o, "VYSLEDEK")
        for p in children(r, "VOLEBNI_STRANA")
    }
    names = {row["NAZEV_STRANY"] for row in read(path)["VOLEBNI_STRANA"]}
    assert names == expected
    assert 'Sdružení nezávislých kandidátů  "PRO ČAVISOV"' in names


# --- types ------------------------------------------------------------------------------------


def test_codes_are_strings_counts_integers_percentages_floats() -> None:
    rows = read(DATA / "kv2014" / "CZ0806.xml")
    obec = rows["OBEC"][0]
    party = rows["VOLEBNI_STRANA"][0]
    assert isinstance(obec["KODZASTUP"], str)
    assert isinstance(obec["JE_SPOCTENO"], bool)
    assert isinstance(party["VSTRANA"], str)
    assert isinstance(party["HLASY"], int)
    assert isinstance(party["HLASY_PROC"], float)


def test_a_value_of_the_wrong_type_is_an_upstream_error() -> None:
    data = (
        (DATA / "kv2022" / "obec_551082.xml").read_bytes().replace(b'HLASY="6916"', b'HLASY="many"')
    )
    with pytest.raises(UpstreamInvalidError, match=r"VOLEBNI_STRANA\.HLASY"):
        read_document(data, register("CZ").datamodel, {"volby": "kv2022"})


# --- hostile and broken documents -------------------------------------------------------------


# Audit hooks cannot be removed: this one records file opens only while a test asks it to.
_opened: list[str] = []
_recording: list[bool] = [False]


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _recording[0] and event == "open" and args and isinstance(args[0], str | bytes):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


def test_external_entity_is_refused_and_no_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = (
        f'<?xml version="1.0"?>\n<!DOCTYPE VYSLEDKY [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        '<VYSLEDKY xmlns="http://www.volby.cz/kv/"><TYP_ZASTUP OZNAC_TYPU="&x;"/></VYSLEDKY>'
    ).encode()
    model = register("CZ").datamodel
    _opened.clear()
    _recording[0] = True
    try:
        with pytest.raises(UpstreamInvalidError, match="refused unsafe XML") as caught:
            read_document(hostile, model, {"volby": "kv2014"})
    finally:
        _recording[0] = False
    assert str(secret) not in _opened
    assert "TOP-SECRET" not in str(caught.value)
    # The hook does see reads: the same file read on purpose is recorded.
    _recording[0] = True
    try:
        secret.read_text()
    finally:
        _recording[0] = False
    assert str(secret) in _opened


def test_external_dtd_is_refused() -> None:
    hostile = b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd"><a/>'
    with pytest.raises(UpstreamInvalidError, match="refused unsafe XML"):
        parse_xml(hostile)


def test_entity_bomb_is_refused_without_blowing_up_memory() -> None:
    levels = "".join(
        f'<!ENTITY e{i} "{"".join(f"&e{i - 1};" for _ in range(10))}">' for i in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e0 "lol">{levels}]><a>&e9;</a>'.encode()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(UpstreamInvalidError, match="refused unsafe XML"):
            parse_xml(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert time.perf_counter() - started < 2


def test_truncated_document_is_an_upstream_error() -> None:
    data = (DATA / "kv2014" / "CZ0100.xml").read_bytes()
    with pytest.raises(UpstreamInvalidError, match="malformed or truncated"):
        parse_xml(data[: len(data) // 2])
