"""The recorded files are kept byte for byte: their git blob hashes match ATTRIBUTION.md."""

from __future__ import annotations

import hashlib
import re

from tests.resolvers.wahldaten_csv.model import DATA_DIR


def test_every_recorded_file_matches_its_attributed_blob() -> None:
    table = (DATA_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    listed = {
        path: (blob, int(size))
        for path, blob, size in re.findall(
            r"^\| `([^`]+\.csv)` \| `[^`]+` \| `[0-9a-f]{40}` \| `([0-9a-f]{40})` \| (\d+) \|$",
            table,
            flags=re.MULTILINE,
        )
    }
    present = {p.relative_to(DATA_DIR).as_posix(): p for p in DATA_DIR.rglob("*.csv")}
    assert len(listed) == 37
    assert set(listed) == set(present)
    for name, path in present.items():
        data = path.read_bytes()
        # git names a file by the SHA-1 of "blob <size>\0<bytes>".
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert (blob, len(data)) == listed[name], name
