"""The fault matrix: every register × every fault of the replicas' one vocabulary
(``resolvers/replica_kit/faults.py``), injected the same way into every kind's replica and
met through GraphQL.

For each cell two gateways meet the fault:

- **cold** (nothing cached): the answer is an ``UPSTREAM_*`` error at the root field with
  ``data`` null there — or, where the register itself has a better answer (VALG serves the
  previous signed version of a file, DE serves the readable rows of a damaged file), that
  answer with a notice saying so;
- **warm** (a good answer cached, then its TTL passed, ``staleIfError`` set): the same good
  answer again, marked stale in ``extensions.notices``.

Never a 500, never an ``INTERNAL_SERVER_ERROR``, never data other than the good answer, the
register's documented fallback, or nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from resolvers.odata.replica.server import ODataReplica
from resolvers.replica_kit.faults import Fault, Faults
from resolvers.valg_sftp.replica.server import start_replica as start_valg
from resolvers.volby_xml.replica.server import VolbyReplica
from resolvers.wahldaten_csv.replica.server import start_replica as start_de
from tests.support import gateway_client, register_subset

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(120)]

UPSTREAM = {"UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT", "UPSTREAM_INVALID"}
QUICK = {"ttl": 0.3, "timeout": 1.0, "retries": 0, "breakerFailures": 1000}

# Every fault of the one vocabulary, for every request from now on; "down" stops the replica.
FAULTS: dict[str, Fault | None] = {
    "5xx": Fault("status", status=503, times=None),
    "slow": Fault("slow", delay=5.0, times=None),
    "held": Fault("timeout", times=None),
    "dropped": Fault("drop", times=None),
    "cut": Fault("cut", times=None),
    "truncated": Fault("truncate", times=None),
    "empty": Fault("truncate", keep=0.0, times=None),
    "malformed": Fault("malformed", times=None),
    "down": None,
}


@dataclass(frozen=True)
class Register:
    """How to run one register's replica and ask it something."""

    name: str
    start: Callable[[], Awaitable[Any]]
    query: str
    match: str | None = None  # what the faults hit (None: every request)
    fallback: frozenset[str] = frozenset()  # faults with a documented non-error answer
    extra: tuple[str, ...] = ()  # other registers the gateway must load


REGISTERS = [
    Register(
        "FT", lambda: ODataReplica().start(), "{ FT_Aktoertype(first: 3) { nodes { id type } } }",
    ),
    Register(
        "CZ", lambda: VolbyReplica().start(),
        '{ CZ_TYP_ZASTUP(where: {volby: {eq: "kv2014"}}) { nodes { TYP_ZASTUP_ID NAZ_TYPU } } }',
        extra=("CZPREZ",),
    ),
    Register(
        "DE", start_de, "{ DE_Wahlparameter(first: 3) { nodes { wahl wahl_datum } } }",
        fallback=frozenset({"truncated", "malformed"}),
    ),
    Register(
        "VALG", start_valg, "{ VALG_Storkreds(first: 3) { nodes { Nummer Navn } } }",
        match="Storkreds", fallback=frozenset({"truncated", "malformed", "empty"}), extra=("FT",),
    ),
]  # fmt: skip

CELLS = [
    pytest.param(register, fault, id=f"{register.name}-{fault}")
    for register in REGISTERS
    for fault in FAULTS
]


async def break_replica(running: Any, register: Register, fault: str) -> None:
    """Make a running replica of any kind fail as ``fault`` says, through its ``faults``."""
    wanted = FAULTS[fault]
    if wanted is None:
        await running.stop()
        return
    faults: Faults = running.faults
    faults.inject(dataclasses.replace(wanted, match=register.match))


@pytest_asyncio.fixture
async def replica(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    register: Register = request.param
    running = await register.start()
    try:
        yield running
    finally:
        await running.stop()


def _overrides(register: Register, running: Any, stale: bool) -> dict[str, dict[str, Any]]:
    options = {**QUICK, "staleIfError": 120 if stale else 0}
    if register.name == "VALG":
        options = {**options, "read_timeout": 1.0, "connect_timeout": 2.0}
    out = {name: {**dict(opts), **options} for name, opts in running.overrides.items()}
    return out


def _check(body: dict[str, Any], register: Register, fault: str, good: Any, warm: bool) -> None:
    errors = body.get("errors", [])
    codes = {e.get("extensions", {}).get("code") for e in errors}
    assert "INTERNAL_SERVER_ERROR" not in codes, body
    root = next(iter(good))
    data = (body.get("data") or {}).get(root)
    notices = body.get("extensions", {}).get("notices", [])
    if warm:
        # What was good is still served: stale (marked), or still valid for the register
        # (VALG files are immutable once named, and its fallback is the good version).
        assert not errors, body
        assert data == good[root], body
        return
    if data is None:
        assert errors, body
        assert codes <= UPSTREAM, body
        return
    if data == good[root]:
        # The fault was ridden out (a dropped SFTP connection is reopened at once).
        assert not errors, body
        return
    # Any other answer only as the register's documented fallback, and said so.
    assert fault in register.fallback, body
    assert notices, body
    if register.name == "VALG":
        assert any(n["code"] == "VALG_FALLBACK" for n in notices), body


async def _ask(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("replica", "fault"), [(c.values[0], c.values[1]) for c in CELLS],
                         indirect=["replica"], ids=[c.id for c in CELLS])  # fmt: skip
async def test_cold_and_warm(replica: Any, fault: str, request: pytest.FixtureRequest) -> None:
    register: Register = request.node.callspec.params["replica"]
    names = (register.name, *register.extra)
    with register_subset(*names) as registers:
        async with gateway_client(
            registers, _overrides(register, replica, stale=True), rate_limit=None,
            response_cache=False,
        ) as warm:  # fmt: skip
            good = await _ask(warm, register.query)
            assert "errors" not in good, good
            assert good["data"][next(iter(good["data"]))]["nodes"], good
            async with gateway_client(
                registers, _overrides(register, replica, stale=False), rate_limit=None,
                response_cache=False,
            ) as cold:  # fmt: skip
                await break_replica(replica, register, fault)
                await asyncio.sleep(0.4)  # the warm gateway's TTL passes
                _check(await _ask(cold, register.query), register, fault, good["data"], False)
                if FAULTS[fault] is not None:  # the fault did meet the gateway
                    assert replica.log.where(fault=True), replica.log
                _check(await _ask(warm, register.query), register, fault, good["data"], True)
