"""Version choice in the store, against an in-memory server.

The recordings keep either every version (FV2026, where no preliminary count followed a final
one) or only the newest (KV/RV2025, where six did), so the cases below are built from real
FV2026 files placed under new names; only the release times say which is newer.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.sources.cache import Cache
from resolvers.valg_sftp.client import RemoteEntry, SftpClient
from resolvers.valg_sftp.codec import FileProblem
from resolvers.valg_sftp.store import DocSpec, ValgStore
from tests.resolvers.valg_sftp.rawdata import FV, RawArchive

ROOT = "folketingsvalg-999-01-01-2030"
FOLDER = f"/data/{ROOT}/valgresultater"
SPEC = DocSpec("Valgresultat", "valgresultater", None, ["AfstemningsområdeDagiId"], None)
AREA = "valgresultater-Folketingsvalg-Aabenraa_Kommune-Aabenraa_Midt"


class MemoryServer:
    """Just enough of :class:`SftpClient` for the store: listings and downloads."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reads: list[str] = []

    async def listdir(self, path: str) -> list[RemoteEntry]:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)}
        if not names:
            raise FileProblem("gone", path)
        return [
            RemoteEntry(n, len(self.files.get(prefix + n, b"")), prefix + n not in self.files)
            for n in names
        ]

    async def read(self, path: str) -> bytes:
        self.reads.append(path)
        if path not in self.files:
            raise FileProblem("gone", path)
        return self.files[path]


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def publish(server: MemoryServer, key: rsa.RSAPrivateKey, name: str, doc: dict[str, Any]) -> None:
    data = json.dumps(doc, ensure_ascii=False).encode()
    server.files[f"{FOLDER}/{name}"] = data
    server.files[f"{FOLDER}/{name}.hash"] = key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def new_server(key: rsa.RSAPrivateKey) -> MemoryServer:
    server = MemoryServer()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server.files[f"/data/{ROOT}/public-key.pem"] = pem
    return server


def real(raw: RawArchive, stamp: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw.files[f"{FV}/valgresultater/{AREA}-{stamp}.json"])
    return doc


async def choose(server: MemoryServer, **kw: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    cache = Cache()
    store = ValgStore(cast(SftpClient, server), cache, listing_ttl=0, **kw)
    notices: list[dict[str, Any]] = []
    try:
        metas = await store.select(ROOT, "valgresultater", SPEC, None, None, notices)
        docs = [await store.content(m) for m in metas]
    finally:
        await cache.close()
    return list(zip(metas, docs, strict=True)), notices


async def test_a_preliminary_count_after_a_final_one_is_served(
    raw: RawArchive, key: rsa.RSAPrivateKey
) -> None:
    final = real(raw, "250320261137")
    preliminary = real(raw, "240320262041")
    assert (final["Resultatart"], preliminary["Resultatart"]) == (
        "Fintælling",
        "ForeløbigOptælling",
    )
    preliminary["FrigivelsesTidspunktUTC"] = "25-03-2026 12:05:09"
    server = new_server(key)
    publish(server, key, f"{AREA}-250320261137.json", final)
    publish(server, key, f"{AREA}-250320261205.json", preliminary)
    ((meta, doc),), notices = await choose(server)
    assert doc["Resultatart"] == "ForeløbigOptælling"
    assert meta.name.endswith("-250320261205.json")
    assert notices == []


async def test_release_time_decides_when_name_stamps_are_close(
    raw: RawArchive, key: rsa.RSAPrivateKey
) -> None:
    # Stamps are truncated to the minute and were seen a minute off: content decides.
    early_name, late_name = real(raw, "240320262041"), real(raw, "250320261137")
    late_name["FrigivelsesTidspunktUTC"] = "25-03-2026 11:36:50"
    early_name["FrigivelsesTidspunktUTC"] = "25-03-2026 11:37:05"
    server = new_server(key)
    publish(server, key, f"{AREA}-250320261137.json", late_name)
    publish(server, key, f"{AREA}-250320261136.json", early_name)
    ((meta, _),), _ = await choose(server)
    assert meta.name.endswith("-250320261136.json")


async def test_one_entity_under_two_names_is_served_once(
    raw: RawArchive, key: rsa.RSAPrivateKey
) -> None:
    # The kommune is "Aabenraa Kommune" in some versions and "Aabenraa" in others.
    older, newer = real(raw, "240320262041"), real(raw, "250320261137")
    server = new_server(key)
    publish(server, key, f"{AREA}-240320262041.json", older)
    publish(
        server, key, "valgresultater-Folketingsvalg-Aabenraa-Aabenraa_Midt-250320261137.json", newer
    )
    pairs, _ = await choose(server)
    assert [doc["FrigivelsesTidspunktUTC"] for _, doc in pairs] == [
        newer["FrigivelsesTidspunktUTC"]
    ]


async def test_unsigned_and_unparsable_newest_files_fall_back(
    raw: RawArchive, key: rsa.RSAPrivateKey
) -> None:
    server = new_server(key)
    publish(server, key, f"{AREA}-240320262041.json", real(raw, "240320262041"))
    server.files[f"{FOLDER}/{AREA}-250320261137.json"] = raw.files[
        f"{FV}/valgresultater/{AREA}-250320261137.json"
    ]
    ((meta, _),), notices = await choose(server)
    assert meta.name.endswith("-240320262041.json")
    assert [n["reason"] for n in notices] == ["unsigned"]
    # Signed garbage: verifies, but is no document.
    garbage = b'{"IndenforParti": ['
    server.files[f"{FOLDER}/{AREA}-250320261137.json"] = garbage
    server.files[f"{FOLDER}/{AREA}-250320261137.json.hash"] = key.sign(
        garbage, padding.PKCS1v15(), hashes.SHA256()
    )
    _, notices = await choose(server)
    assert [n["reason"] for n in notices] == ["unparsable"]


async def test_content_cache_is_bounded_and_refilled_by_verified_downloads(
    raw: RawArchive, key: rsa.RSAPrivateKey
) -> None:
    server = new_server(key)
    names = [f"{AREA}-240320262041.json", "valgresultater-Folketingsvalg-X-Y-250320261137.json"]
    docs = [real(raw, "240320262041"), real(raw, "250320261137")]
    docs[1]["AfstemningsområdeDagiId"] = 1
    for name, doc in zip(names, docs, strict=True):
        publish(server, key, name, doc)
    bound = max(len(server.files[f"{FOLDER}/{n}"]) for n in names) + 10
    cache = Cache()
    store = ValgStore(cast(SftpClient, server), cache, listing_ttl=0, content_bytes=bound)
    try:
        metas = await store.select(ROOT, "valgresultater", SPEC, None, None, [])
        assert store.contents.bytes <= bound
        server.reads.clear()
        contents = [await store.content(m) for m in metas]
        assert {c["AfstemningsområdeDagiId"] for c in contents} == {1, 702016}
        assert server.reads  # evicted content came back, verified again
        server.files[f"{FOLDER}/{metas[0].name}.hash"] = b"\x00" * 256
        store.contents = type(store.contents)(bound)
        with pytest.raises(FileProblem):
            await store.content(metas[0])
    finally:
        await cache.close()


class HostileServer(MemoryServer):
    """Lists names that would leave the folder if joined to its path."""

    async def listdir(self, path: str) -> list[RemoteEntry]:
        entries = await super().listdir(path)
        if path == FOLDER:
            entries += [
                RemoteEntry(f"../../{AREA}-250320261200.json", 10, False),
                RemoteEntry(f"x/{AREA}-250320261201.json", 10, False),
                RemoteEntry("..", 0, True),
            ]
        return entries


async def test_listed_names_never_leave_their_folder(
    raw: RawArchive, key: rsa.RSAPrivateKey
) -> None:
    server = HostileServer()
    server.files.update(new_server(key).files)
    publish(server, key, f"{AREA}-240320262041.json", real(raw, "240320262041"))
    ((meta, _),), notices = await choose(server)
    assert meta.name == f"{AREA}-240320262041.json"
    assert notices == []
    assert all(".." not in path and "/x/" not in path for path in server.reads)


async def test_oversized_files_are_not_downloaded(raw: RawArchive, key: rsa.RSAPrivateKey) -> None:
    server = new_server(key)
    publish(server, key, f"{AREA}-240320262041.json", real(raw, "240320262041"))
    pairs, notices = await choose(server, max_file_bytes=100)
    assert pairs == []
    assert [n["reason"] for n in notices] == ["oversized"]
    assert not any(path.endswith(".json") for path in server.reads)
