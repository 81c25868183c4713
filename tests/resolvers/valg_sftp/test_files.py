"""The quirks of the real files, on the recorded archives (data/valg/ATTRIBUTION.md): signatures,
zero-byte files, names with hyphens and day-first stamps, local times and coerced values."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.model.datamodel import ScalarType
from resolvers.valg_sftp.codec import (
    FileProblem,
    convert,
    decode_key,
    load_public_key,
    normalise_name,
    parse_document,
    series_and_stamp,
    verify_signature,
)
from tests.resolvers.valg_sftp.rawdata import AABENRAA_MIDT_TURNOUT, FV, KV, RV, RawArchive


def _key(raw: RawArchive, root: str) -> rsa.RSAPublicKey:
    key = load_pem_public_key(raw.files[f"{root}/public-key.recovered.pem"])
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_the_16_real_fv2026_signatures_verify_with_the_recovered_key(raw: RawArchive) -> None:
    key = _key(raw, FV)
    pairs = [
        (name, raw.files[name.removesuffix(".hash")])
        for name in raw.files
        if name.startswith(f"{FV}/") and name.endswith(".json.hash")
    ]
    assert len(pairs) == 16
    for name, data in pairs:
        assert verify_signature(key, data, raw.files[name]), name
    # ... and not with the other election's key: the key differs per election root.
    assert not any(verify_signature(_key(raw, KV), d, raw.files[n]) for n, d in pairs)


def test_kvrv_signatures_verify_except_the_old_test_files(raw: RawArchive) -> None:
    key = _key(raw, KV)
    good: list[str] = []
    bad: list[str] = []
    for name, data in raw.files.items():
        if name.startswith((f"{KV}/", f"{RV}/")) and name.endswith(".json"):
            signature = raw.files.get(f"{name}.hash")
            if signature is not None:
                (good if verify_signature(key, data, signature) else bad).append(name)
    assert len(good) == 1570
    assert bad
    assert all("/verifikation/" in name for name in bad)
    assert all(name.endswith("-190820250843.json") for name in bad)


def test_a_256_byte_signature_of_an_older_key_does_not_verify(raw: RawArchive) -> None:
    base = "valgresultater-Kommunalvalg-Fanø_Kommune-Nordby-010820251217.json"
    name = f"{KV}/verifikation/valgresultater/{base}.hash"  # recorded apart from its file
    assert len(raw.files[name]) == 256
    data = raw.files[f"{KV}/valgresultater/{base}"]
    assert not verify_signature(_key(raw, KV), data, raw.files[name])


def test_a_signature_is_over_the_exact_bytes(raw: RawArchive) -> None:
    name = f"{FV}/geografi/Region-190320261917.json"
    key, data, signature = _key(raw, FV), raw.files[name], raw.files[f"{name}.hash"]
    assert verify_signature(key, data, signature)
    assert not verify_signature(key, data + b"\n", signature)
    assert not verify_signature(key, data, signature[:-1])


def test_public_key_loading_rejects_junk() -> None:
    with pytest.raises(Exception, match="PEM"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")


def test_the_three_zero_byte_files_are_not_documents(raw: RawArchive) -> None:
    empty = sorted(n for n, d in raw.files.items() if n.endswith(".json") and not d)
    assert len(empty) == 3
    for name in empty:
        with pytest.raises(FileProblem) as info:
            parse_document(raw.files[name])
        assert info.value.reason == "empty"


def test_unparsable_and_bom_files() -> None:
    with pytest.raises(FileProblem) as info:
        parse_document(b'{"Valgart": "Folketingsvalg", "Indenfor')
    assert info.value.reason == "unparsable"
    with pytest.raises(FileProblem):
        parse_document(b'"just a string"')
    assert parse_document(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_names_with_inner_hyphens_keep_their_series(raw: RawArchive) -> None:
    names = [n.rpartition("/")[2] for n, _ in raw.folder(f"{FV}/valgresultater")]
    tricky = [n for n in names if "Alminde-Viuf" in n]
    assert tricky
    for name in tricky:
        series, stamp = series_and_stamp(name)
        assert series == "valgresultater-Folketingsvalg-Kolding_Kommune-Alminde-Viuf-Vester_Nebel"
        assert stamp is not None
    assert series_and_stamp("mandatfordeling-Kommunalvalg-Høje-Taastrup.json") == (
        "mandatfordeling-Kommunalvalg-Høje-Taastrup",
        None,
    )


def test_stamps_are_day_first_so_text_order_is_wrong(raw: RawArchive) -> None:
    # Two real names: a KV test file of August 2025 and an FV file of March 2026.
    older = f"{KV}/mandatfordeling/mandatfordeling-Kommunalvalg-Københavns-190820250643.json"
    newer = f"{FV}/kandidat-data/kandidat-data-Folketingsvalg-4-Bornholm-150320261120.json"
    assert older in raw.files
    assert newer in raw.files
    released = [json.loads(raw.files[n])["FrigivelsesTidspunktUTC"] for n in (older, newer)]
    assert [r[6:10] for r in released] == ["2025", "2026"]
    stamp_older, stamp_newer = series_and_stamp(older)[1], series_and_stamp(newer)[1]
    assert stamp_older is not None
    assert stamp_newer is not None
    assert stamp_older < stamp_newer
    assert older.rpartition("-")[2] > newer.rpartition("-")[2]  # text order says otherwise


def test_stamp_matches_release_time_to_the_minute(raw: RawArchive) -> None:
    name = AABENRAA_MIDT_TURNOUT
    doc = json.loads(raw.files[name])
    _, stamp = series_and_stamp(name)
    assert stamp is not None
    assert stamp.strftime("%d-%m-%Y %H:%M") == doc["FrigivelsesTidspunktUTC"][:16]


def test_dates_and_utc_times_become_iso_8601() -> None:
    assert convert("24-03-2026", ScalarType.DATE) == "2026-03-24"
    assert convert("24-03-2026 09:14:37", ScalarType.DATETIME) == "2026-03-24T09:14:37Z"
    assert convert("01-01-0001 00:00:00", ScalarType.DATETIME) == "0001-01-01T00:00:00Z"
    assert convert("not a date", ScalarType.DATE) == "not a date"


def test_turnout_times_are_danish_local_time(raw: RawArchive) -> None:
    doc = json.loads(raw.files[AABENRAA_MIDT_TURNOUT])
    first = doc["Valgdeltagelse"][0]["Tidspunkt"]
    assert first == "10:00:00"
    # Released 09:14 UTC = 10:14 in Denmark (CET, +01:00): the 10:00 count is local time.
    assert convert(first, ScalarType.DATETIME, doc["Valgdag"]) == "2026-03-24T10:00:00+01:00"
    # Summer time in November does not apply; in June it does.
    assert convert("20:00:00", ScalarType.DATETIME, "18-11-2025") == "2025-11-18T20:00:00+01:00"
    assert convert("20:00", ScalarType.DATETIME, "05-06-2019") == "2019-06-05T20:00:00+02:00"


def test_numbers_and_ids_are_coerced_to_the_declared_type() -> None:
    assert convert("403551", ScalarType.INT) == 403551
    assert convert(702016, ScalarType.STRING) == "702016"
    assert convert(True, ScalarType.STRING) is True
    assert convert(3, ScalarType.FLOAT) == 3.0


def test_normalised_names_match_across_sanitisations() -> None:
    assert normalise_name("Strandhuse/Nr. Bjert/ Eltang") == normalise_name(
        "Strandhuse-Nr__Bjert-_Eltang"
    )
    assert normalise_name("1. Nord") == "1nord"


def test_keys_decode() -> None:
    key = decode_key(f"{FV}/verifikation/valgresultater/702016/IndenforParti/00001", False)
    assert key is not None
    assert (key.root, key.verification, key.folder, key.identity) == (
        FV,
        True,
        "valgresultater",
        "702016",
    )
    geo = decode_key(f"{FV}/geografi/Kommune/580", True)
    assert geo is not None
    assert (geo.file, geo.identity) == ("Kommune", "580")
    assert decode_key("nonsense", False) is None
    assert decode_key(42, False) is None
