"""Importing an archive of ČSÚ precinct batches into the history (``gateway history import``).

Every ``.xml`` of a folder or tar archive that is a batch (its ``DAVKA`` names its
``PORADI_DAVKY``) is kept where the adapter keeps the batches it reads
(``batches/{election}/davka-N.xml``), as published at its ``DATUM_CAS_GENEROVANI``. Its
election is the register's election whose context the batch's ``DAVKA`` attributes match
(``KOLO="1"`` is the first round); a batch of no configured election is left out. Other
documents (the municipal results) are not kept: the adapter answers them now only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from gateway.history.archive import Archived, mirror_files, record_all
from gateway.history.store import HistoryStore
from gateway.model.datamodel import Register
from resolvers.volby_xml.adapter import batch_number_in, batch_time
from resolvers.volby_xml.describe import batch_folder
from resolvers.volby_xml.options import Election, VolbyConfig

__all__ = ["archive_batches", "import_batches"]

_DAVKA = re.compile(rb"<(?:\w+:)?DAVKA\b([^>]*)>")
_ATTRIBUTE = re.compile(rb'(\w+)="([^"]*)"')


def _election(data: bytes, elections: tuple[Election, ...]) -> Election | None:
    found = _DAVKA.search(data[:4096])
    if found is None:
        return None
    attributes = {k.decode(): v.decode() for k, v in _ATTRIBUTE.findall(found.group(1))}
    for election in elections:
        if all(attributes.get(k) == str(v) for k, v in election.context.items()):
            return election
    return None


def archive_batches(register: Register, path: Path) -> Iterator[Archived]:
    """The batches of a folder or tar archive of ``register``'s elections."""
    elections = VolbyConfig.of(register.source).elections
    for name, data, mtime in mirror_files(path):
        if not name.endswith(".xml"):
            continue
        number = batch_number_in(data)
        election = _election(data, elections) if number is not None else None
        if election is None:
            continue
        kept = f"{batch_folder(election)}/davka-{number}.xml"
        yield Archived(kept, data, None, batch_time(data) or mtime, mtime)


async def import_batches(
    history: HistoryStore, register: Register, path: Path, progress: Callable[[int], None]
) -> int:
    """Load an archive of batches; how many were read."""
    return await record_all(history, register.name, archive_batches(register, path), progress)
