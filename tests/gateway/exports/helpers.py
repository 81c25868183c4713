"""Independent readers for the tests of the exports: CSV bodies, expected FT rows, registers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.resolvers.odata import raw
from tests.support import REGISTERS

STEMME_COLUMNS = ["id", "typeid", "afstemningid", "aktoerid", "opdateringsdato"]


def csv_rows(body: bytes) -> list[list[str]]:
    """The records of an RFC 4180 body (header included), read by the stdlib."""
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline=""), strict=True))


def as_csv_text(value: Any) -> str:
    """A recorded value as the CSV should hold it: null empty, numbers as digits."""
    return "" if value is None else str(value)


def ft_zone() -> ZoneInfo:
    """The zone FT's wall-clock date-times are in, as its Source.json declares it."""
    source = json.loads((REGISTERS / "FT" / "rc00001" / "Source.json").read_text("utf-8"))
    return ZoneInfo(source["timeZone"])


def ft_moment(text: str | None) -> dt.datetime | None:
    """A recorded FT date-time (wall clock, no offset) as the aware UTC moment it names."""
    if text is None:
        return None
    return dt.datetime.fromisoformat(text).replace(tzinfo=ft_zone()).astimezone(dt.UTC)


def stemme(**equal: Any) -> list[dict[str, Any]]:
    """The recorded Stemme rows (by id) whose columns equal ``equal``."""
    return [r for r in raw.stemme() if all(r[k] == v for k, v in equal.items())]


def copy_ft(root: Path, security: dict[str, Any] | None = None, downloads: Any = None) -> Path:
    """A copy of registers/FT under ``root`` with another Security_Model or downloads annex."""
    target = root / "FT"
    shutil.copytree(REGISTERS / "FT", target)
    rc = target / "rc00001"
    if security is not None:
        path = rc / "3. Security" / "Security_Model.json"
        path.write_text(json.dumps(security), encoding="utf-8")
    annex = rc / "4. Tabular_data" / "Automated_Predefined_Filedownloads.json"
    if downloads == "missing":
        annex.unlink()
    elif downloads is not None:
        annex.write_text(json.dumps(downloads), encoding="utf-8")
    return root
