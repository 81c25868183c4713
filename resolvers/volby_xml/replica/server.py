"""A local replica of volby.cz's election-results XML endpoints, serving recorded responses.

URL shapes as on volby.cz::

    /pls/kv2014/vysledky                               national summary (municipal 2014)
    /pls/kv2014/vysledky_obce_okres?nuts=CZ0100        a district and its councils
    /pls/kv2022/vysledky_obec?cislo_obce=551082        one council
    /pls/kv2022/vysledky_okrsky?datumvoleb=20220923&davka=N   precinct batch N (empty: newest)
    /pls/prez2023/vysledky_okrsky?kolo=1&davka=N       presidential precinct batches

Every URL accepts ``datumvoleb``; a date other than the election's is answered as ČSÚ does,
with error 20 (processing for that date not activated). The newest batch of an election without
any batch published is error 30; other data that does not exist (a batch not published yet or
missing from the recording, a district or council not recorded) is answered with
``<CHYBA KOD_CHYBY="10"/>``; a malformed parameter with the text form of ``CHYBA``. Batches
are published by the replica kit's :class:`ReplayClock` (a batch recorded ``offset`` seconds
after the first of its series is out once the clock has run that long) or by hand
(:meth:`VolbyReplica.release`); the kit's :class:`Fault` vocabulary makes the replica slow,
failing, truncating or breaking its answers; every request is logged in
:attr:`VolbyReplica.log`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.server import RunningServer, serve_asgi
from gateway.sources.kinds import DEMO_REPLAY_ENV
from resolvers.replica_kit.clock import Replay, ReplayClock
from resolvers.replica_kit.faults import Fault, Faults
from resolvers.replica_kit.http import FaultyHttp
from resolvers.replica_kit.log import RequestLog
from resolvers.volby_xml.parse import NO_BATCH_YET, NOT_ACTIVATED
from resolvers.volby_xml.replica.data import (
    DATA_DIR,
    Batch,
    ElectionData,
    error_document,
    load_catalogue,
)

__all__ = ["Fault", "ReplayClock", "VolbyReplica", "demo_replica"]

_DISTRICT = re.compile(r"CZ0[1-8][0-9][0-9A-C]")
_COUNCIL = re.compile(r"[0-9]{6}")
_NUMBER = re.compile(r"[0-9]{1,6}")
_RECORDED_ERROR = DATA_DIR / "kv_error" / "csu-okrsky-live-chyba-10.xml"
_MEDIA_TYPE = "application/xml"


# The registers the recording in data/cz is of (and whether each lists districts).
RECORDED_REGISTERS: Mapping[str, bool] = {"CZ": True, "CZPREZ": False}
# Those whose recording has precinct batches (what a mirror holds for the history).
BATCHED_REGISTERS = ("CZPREZ",)


class VolbyReplica:
    """The replica's state (catalogue, clock, faults, request log) and its ASGI app."""

    def __init__(
        self,
        *,
        clock: ReplayClock | None = None,
        data_dir: Path = DATA_DIR,
    ) -> None:
        self.catalogue = load_catalogue(data_dir)
        self.registers: dict[str, bool] = dict(RECORDED_REGISTERS)
        """The registers served, each with whether its ``Source.json`` lists districts."""
        self.clock = clock or ReplayClock()
        """What is published by now (without a replay: everything)."""
        self.faults = Faults()
        """The faults to inject (matched against ``path?query``)."""
        self.log = RequestLog()
        """Every request received."""
        self._limits: dict[str, int] = {}
        self._recorded_error = (data_dir / _RECORDED_ERROR.relative_to(DATA_DIR)).read_bytes()
        self._server: RunningServer | None = None
        routes = [Route("/pls/{election}/{document}", self._handle)]
        self._layer = FaultyHttp(Starlette(routes=routes), faults=self.faults, log=self.log)
        self.app = self._layer

    # ----------------------------------------------------------------- control

    @property
    def mirrored(self) -> tuple[str, ...]:
        """The registers served whose batches :meth:`mirror` writes."""
        return tuple(name for name in self.registers if name in BATCHED_REGISTERS)

    def mirror(self, folder: Path) -> int:
        """Write what a mirror of volby.cz kept through the recording would hold: every
        precinct batch of every election, one file each (``{election}/{series}_davka-N.xml``).
        How many were written."""
        written = 0
        for election, data in sorted(self.catalogue.items()):
            for series, batches in sorted(data.series.items()):
                for number, batch in sorted(batches.items()):
                    target = folder / election / f"{series or 'davka'}_davka-{number}.xml"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(batch.content)
                    written += 1
        return written

    def add_batch(
        self, election: str, series: str, number: int, content: bytes, offset: float = 0.0
    ) -> None:
        """Serve an extra batch (tests build municipal batches this way)."""
        self.catalogue[election].series.setdefault(series, {})[number] = Batch(content, offset)

    def release(self, election: str, series: str, upto: int) -> None:
        """Publish the batches of one series up to ``upto`` (0: none) by hand, whatever the
        clock says."""
        self._limits[_series_id(election, series)] = upto

    def released(self, series: str, number: int, batch: Batch) -> bool:
        """Whether batch ``number`` of ``series`` is published now."""
        if series in self._limits:
            return number <= self._limits[series]
        return self.clock.released(dt.timedelta(seconds=batch.offset))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> VolbyReplica:
        """Listen on a real socket."""
        self._layer.starting()
        self._server = await serve_asgi(self.app, host, port)
        return self

    async def stop(self) -> None:
        """Stop listening (requests held by faults end at once)."""
        if self._server is not None:
            self._layer.stopping()
            await self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:port``)."""
        if self._server is None:
            raise RuntimeError("the replica is not running")
        return self._server.url

    @property
    def address(self) -> str:
        """Where it listens, for people."""
        return f"{self.url}/pls/"

    @property
    def overrides(self) -> Mapping[str, Mapping[str, Any]]:
        """Source.json options pointing the served registers at the replica (a register
        that lists districts gets the districts the recording holds)."""
        districts = {
            name: sorted(e.districts) for name, e in self.catalogue.items() if e.kind == "kv"
        }
        return {
            name: {"url": self.url, "districts": districts} if listed else {"url": self.url}
            for name, listed in self.registers.items()
        }

    # ----------------------------------------------------------------- serving

    async def _handle(self, request: Request) -> Response:
        params = dict(request.query_params)
        status, body = self._answer(
            request.path_params["election"], request.path_params["document"], params
        )
        return Response(body, status, media_type=_MEDIA_TYPE if status == 200 else "text/plain")

    def _answer(self, name: str, document: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        election = self.catalogue.get(name)
        if election is None or not _serves(election, document):
            return 404, b"Not Found\n"
        wanted = params.get("datumvoleb")
        if wanted and election.datumvoleb and wanted != election.datumvoleb:
            return 200, error_document(election, document, code=NOT_ACTIVATED)
        if document == "vysledky":
            return self._or_missing(election, document, election.national)
        if document == "vysledky_obce_okres":
            return self._keyed(election, document, params, "nuts", _DISTRICT, election.districts)
        if document == "vysledky_obec":
            return self._keyed(
                election, document, params, "cislo_obce", _COUNCIL, election.councils
            )
        return self._batch(election, params)

    def _keyed(
        self,
        election: ElectionData,
        document: str,
        params: Mapping[str, str],
        parameter: str,
        pattern: re.Pattern[str],
        recorded: Mapping[str, bytes],
    ) -> tuple[int, bytes]:
        value = params.get(parameter, "")
        if not pattern.fullmatch(value):
            return 200, error_document(election, document, text=f"Neplatný parametr {parameter}")
        return self._or_missing(election, document, recorded.get(value))

    def _or_missing(
        self, election: ElectionData, document: str, content: bytes | None
    ) -> tuple[int, bytes]:
        if content is not None:
            return 200, content
        if election.kind == "kv" and document == "vysledky_okrsky":
            return 200, self._recorded_error
        return 200, error_document(election, document, code=10)

    def _batch(self, election: ElectionData, params: Mapping[str, str]) -> tuple[int, bytes]:
        document = "vysledky_okrsky"
        series = ""
        if election.kind == "prez":
            series = params.get("kolo", "")
            if series not in election.series:
                return 200, error_document(election, document, text="Neplatný parametr kolo")
        batches = election.series.get(series, {})
        number = params.get("davka", "")
        sid = _series_id(election.name, series)
        if number == "":
            published = [n for n, b in batches.items() if self.released(sid, n, b)]
            newest = max(published, default=None)
            if newest is None:
                return 200, error_document(election, document, code=NO_BATCH_YET)
            return 200, batches[newest].content
        if not _NUMBER.fullmatch(number):
            return 200, error_document(election, document, text="Neplatný parametr davka")
        batch = batches.get(int(number))
        if batch is None or not self.released(sid, int(number), batch):
            return self._or_missing(election, document, None)
        return 200, batch.content


def _serves(election: ElectionData, document: str) -> bool:
    if election.kind == "prez":
        return document == "vysledky_okrsky"
    return document in ("vysledky", "vysledky_obce_okres", "vysledky_obec", "vysledky_okrsky")


def _series_id(election: str, series: str) -> str:
    return f"{election}/{series}" if series else election


async def demo_replica(
    registers: Mapping[str, Mapping[str, Any]] | None = None, speed: float | None = None
) -> VolbyReplica:
    """Start the replica for ``gateway demo``: every batch out, or replayed ``speed`` times
    faster (election night from its first batch).

    Without ``speed``, ``gateway demo --replay`` (the environment's ``DLS_DEMO_REPLAY``)
    gives it: its batches are recorded as offsets from the first, so a window's instants do
    not apply, only its speed. ``registers`` (name → ``Source.json``) are the registers it
    serves; by default the ones recorded.
    """
    if speed is None and os.environ.get(DEMO_REPLAY_ENV) is not None:
        speed = Replay.parse(os.environ[DEMO_REPLAY_ENV]).speed
    replica = VolbyReplica(clock=ReplayClock(speed=speed) if speed else ReplayClock())
    if registers:
        replica.registers = {name: "districts" in source for name, source in registers.items()}
    return await replica.start()
