"""The replicas and gateways the tests run against, one set of fixtures per source kind.

Registered from ``tests/conftest.py`` (``pytest_plugins``), so every test can ask for them:

========================== ======== =====================================================
fixture                    scope    what
========================== ======== =====================================================
``odata_replica``          module   the FT OData replica (recorded data, page size 100)
``clean_odata_replica``    function ``odata_replica`` without faults, latency or log
``odata_gateway``          module   the gateway (FT only) over ``odata_replica``
``valg_replica``           function a fresh VALG SFTP replica (clock at the archive's end)
``module_valg_replica``    module   one VALG replica for the module
``volby_replica``          function a fresh volby.cz replica, every batch published
``manual_volby_replica``   function a volby.cz replica whose clock the test moves by hand
``wahldaten_replica``      function a fresh Offene Wahldaten replica (the recorded files)
``module_wahldaten_replica`` module one Offene Wahldaten replica for the module
``wahldaten_gateway``      module   the gateway (DE only) over ``module_wahldaten_replica``
``replica_factory``        function starts replicas of any kind with options, stops them after
========================== ======== =====================================================

Variants are asked for with the ``replica`` marker, read by the fixture of the scope it is set
at (a module's ``pytestmark`` for module fixtures)::

    pytestmark = pytest.mark.replica(instant=START)           # VALG: the clock's instant
    @pytest.mark.replica(released={"1": 1, "2": 0})           # CZPREZ: batches out by hand
    @pytest.mark.replica(page_size=10, data=...)              # FT

``odata_gateway`` takes the upstream timeout from a module's ``FT_TIMEOUT`` (5 s by default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio

from resolvers.odata.replica.server import ODataReplica
from resolvers.valg_sftp.replica.server import ValgReplica, start_replica as start_valg
from resolvers.volby_xml.replica.server import ReplayClock, VolbyReplica
from resolvers.wahldaten_csv.replica.server import (
    WahldatenDemo,
    WahldatenReplica,
    start_replica as start_wahldaten,
)
from tests.support import gateway_client, register_subset

Kind = Literal["odata", "valg", "volby", "wahldaten"]
KINDS: tuple[Kind, ...] = ("odata", "valg", "volby", "wahldaten")
ReplicaFactory = Callable[..., Awaitable[Any]]

# The presidential election's two rounds (series) on the volby.cz replica.
PREZ = "prez2023"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "replica(**options): options of the replica fixtures (see tests/fixtures.py)"
    )


@asynccontextmanager
async def running_odata(data: Any = None, page_size: int = 100) -> AsyncIterator[ODataReplica]:
    """The FT replica (``data``: an ``FtData`` other than the recording)."""
    async with ODataReplica(data, page_size=page_size) as running:
        yield running


@asynccontextmanager
async def running_valg(**options: Any) -> AsyncIterator[ValgReplica]:
    """The VALG replica (``instant``: where its clock stands; the archive's end by default)."""
    running = await start_valg(**options)
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def running_volby(
    clock: ReplayClock | None = None, released: Mapping[str, int] | None = None
) -> AsyncIterator[VolbyReplica]:
    """The volby.cz replica. ``released`` (round → last batch) puts it on a clock moved by
    hand with those presidential batches out; without it every batch is published."""
    if released is not None and clock is None:
        clock = ReplayClock()
    running = await VolbyReplica(clock=clock).start()
    for series, upto in (released or {}).items():
        running.release(PREZ, series, upto)
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def running_wahldaten(
    replica: WahldatenReplica | None = None,
) -> AsyncIterator[WahldatenDemo]:
    """The Offene Wahldaten replica serving ``replica`` (the recorded files by default)."""
    demo = await start_wahldaten(replica if replica is not None else WahldatenReplica.recorded())
    try:
        yield demo
    finally:
        await demo.stop()


RUNNING: dict[Kind, Callable[..., Any]] = {
    "odata": running_odata,
    "valg": running_valg,
    "volby": running_volby,
    "wahldaten": running_wahldaten,
}


def running_replica(kind: Kind, **options: Any) -> Any:
    """An async context manager running one kind's replica."""
    return RUNNING[kind](**options)


def marked(request: pytest.FixtureRequest, **defaults: Any) -> dict[str, Any]:
    """The options of the nearest ``replica`` marker over ``defaults``."""
    marker = request.node.get_closest_marker("replica")
    return {**defaults, **(marker.kwargs if marker is not None else {})}


# -- the factory -------------------------------------------------------------------------


@pytest.fixture
async def replica_factory() -> AsyncIterator[ReplicaFactory]:
    """``await replica_factory(kind, **options)`` starts a replica; all stop after the test."""
    async with AsyncExitStack() as stack:

        async def start(kind: Kind, **options: Any) -> Any:
            return await stack.enter_async_context(running_replica(kind, **options))

        yield start


# -- FT (OData) --------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def odata_replica(request: pytest.FixtureRequest) -> AsyncIterator[ODataReplica]:
    async with running_odata(**marked(request)) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def clean_odata_replica(odata_replica: ODataReplica) -> AsyncIterator[ODataReplica]:
    """``odata_replica`` without faults, latency or logged requests (and left so)."""
    odata_replica.faults.clear()
    odata_replica.latency = 0.0
    odata_replica.log.clear()
    yield odata_replica
    odata_replica.faults.clear()
    odata_replica.latency = 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def odata_gateway(
    request: pytest.FixtureRequest, odata_replica: ODataReplica
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app serving FT from ``odata_replica`` (upstream timeout ``FT_TIMEOUT``)."""
    timeout = getattr(request.module, "FT_TIMEOUT", 5)
    with register_subset("FT") as registers:
        options = {"FT": {"url": odata_replica.url, "timeout": timeout}}
        async with gateway_client(registers, options) as client:
            yield client


# -- VALG (SFTP) -------------------------------------------------------------------------


@pytest.fixture
async def valg_replica(request: pytest.FixtureRequest) -> AsyncIterator[ValgReplica]:
    async with running_valg(**marked(request)) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_valg_replica(request: pytest.FixtureRequest) -> AsyncIterator[ValgReplica]:
    async with running_valg(**marked(request)) as running:
        yield running


# -- CZ, CZPREZ (volby.cz XML) -----------------------------------------------------------


@pytest.fixture
async def volby_replica() -> AsyncIterator[VolbyReplica]:
    """The replica with every batch published, on 127.0.0.1 and a free port."""
    async with running_volby() as running:
        yield running


@pytest.fixture
async def manual_volby_replica(request: pytest.FixtureRequest) -> AsyncIterator[VolbyReplica]:
    """The replica with a replay clock the test moves by hand: no presidential batch out,
    or those of the marker's ``released`` (round → last batch)."""
    async with running_volby(**marked(request, released={"1": 0, "2": 0})) as running:
        yield running


# -- DE (Offene Wahldaten CSV) -----------------------------------------------------------


@pytest.fixture
async def wahldaten_replica() -> AsyncIterator[WahldatenDemo]:
    """The replica with the recorded files, on 127.0.0.1 and a free port."""
    async with running_wahldaten() as demo:
        yield demo


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_wahldaten_replica() -> AsyncIterator[WahldatenDemo]:
    async with running_wahldaten() as demo:
        yield demo


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wahldaten_gateway(
    module_wahldaten_replica: WahldatenDemo,
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app serving DE from ``module_wahldaten_replica``."""
    with register_subset("DE") as registers:
        async with gateway_client(registers, module_wahldaten_replica.overrides) as client:
            yield client
