"""Listings are untrusted: only plain .csv names directly in the folder are read."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model.errors import UpstreamInvalidError, UpstreamUnavailableError
from resolvers.wahldaten_csv.upstream import (
    DirectoryUpstream,
    parse_html_listing,
    parse_json_listing,
)

BASE = "http://example.test/wahl/daten/"


def test_json_listing_entries() -> None:
    listing = parse_json_listing(
        {
            "files": [
                {"name": "a b„c“.csv", "etag": '"1"', "size": 3},
                "plain.csv",
                {"name": "../secret.csv"},
                {"name": "sub/x.csv"},
                {"name": "readme.txt"},
                {"name": "sub/"},
                {"nothing": 1},
            ]
        },
        BASE,
    )
    assert [(f.name, f.location, f.version) for f in listing.files] == [
        ("a b„c“.csv", BASE + "a%20b%E2%80%9Ec%E2%80%9C.csv", '"1"'),
        ("plain.csv", BASE + "plain.csv", "None:None"),
    ]
    assert len(listing.warnings) == 4
    with pytest.raises(UpstreamInvalidError):
        parse_json_listing({"files": "x"}, BASE)


def test_html_listing_links() -> None:
    page = """<html><body><pre>
    <a href="../">../</a>
    <a href="?C=M;O=A">Last modified</a>
    <a href="a%20b%E2%80%9Ec%E2%80%9C.csv">a b„c“.csv</a>
    <a href="/wahl/daten/abs.csv">abs.csv</a>
    <a href="http://other.test/wahl/daten/x.csv">x</a>
    <a href="sub/y.csv">y</a>
    <a href="%2E%2E%2Fz.csv">z</a>
    <a href="archiv/">archiv/</a>
    </pre></body></html>"""
    listing = parse_html_listing(page, BASE)
    assert [(f.name, f.location) for f in listing.files] == [
        ("a b„c“.csv", BASE + "a%20b%E2%80%9Ec%E2%80%9C.csv"),
        ("abs.csv", BASE + "abs.csv"),
    ]
    assert len(listing.warnings) == 3


async def test_directory_listing(tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_bytes(b"secret\n")
    tmp_path = tmp_path / "root"
    tmp_path.mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.csv").write_bytes(b"x\n")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.csv").write_bytes(b"y\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "b.csv").write_bytes(b"z\n")
    (tmp_path / "notes.txt").write_bytes(b"")
    (tmp_path / "link.csv").symlink_to(outside)
    upstream = DirectoryUpstream(tmp_path)
    listing = await upstream.listing()
    assert [Path(f.location).relative_to(tmp_path).as_posix() for f in listing.files] == [
        "one/a.csv"
    ]
    assert len(listing.warnings) == 1
    assert (await upstream.read(listing.files[0])).data == b"x\n"
    with pytest.raises(UpstreamUnavailableError):
        await DirectoryUpstream(tmp_path / "missing").listing()
