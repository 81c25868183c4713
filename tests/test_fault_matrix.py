"""The fault matrix: every register × every fault its replica can inject, through GraphQL.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from resolvers.odata.replica.server import FtReplica
from resolvers.valg_sftp.replica.server import start_replica as start_valg
from resolvers.volby_xml.replica.replay import Fault as CzFault
from resolvers.volby_xml.replica.server import VolbyReplica
from resolvers.wahldaten_csv.replica.server import Fault as DeFault, start_replica as start_de
from tests.support import gateway_client, register_subset

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(120)]

UPSTREAM = {"UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT", "UPSTREAM_INVALID"}
QUICK = {"ttl": 0.3, "timeout": 1.0, "retries": 0, "breakerFailures": 1000}


@dataclass(frozen=True)
class Register:
    """How to run one register's replica, ask it something, and break it."""

    name: str
    start: Callable[[], Awaitable[Any]]
    query: str
    faults: dict[str, Callable[[Any], Any]]
    fallback: frozenset[str] = frozenset()  # faults with a documented non-error answer
    extra: tuple[str, ...] = ()  # other registers the gateway must load


def _ft_faults() -> dict[str, Callable[[Any], Any]]:
    return {
        "5xx": lambda r: r.inject("error503", times=None),
        "slow": lambda r: r.inject("timeout", times=None),
        "truncated": lambda r: r.inject("truncate", times=None),
        "malformed": lambda r: r.inject("malformed", times=None),
        "dropped": lambda r: r.inject("drop", times=None),
    }


def _cz_faults() -> dict[str, Callable[[Any], Any]]:
    return {
        "5xx": lambda r: r.inject(CzFault("status", status=503, times=-1)),
        "slow": lambda r: r.inject(CzFault("slow", delay=5.0, times=-1)),
        "truncated": lambda r: r.inject(CzFault("truncate", times=-1)),
    }


def _de_faults() -> dict[str, Callable[[Any], Any]]:
    return {
        "5xx": lambda r: r.replica.inject(DeFault("status", status=503)),
        "slow": lambda r: r.replica.inject(DeFault("slow", delay=5.0)),
        "truncated": lambda r: r.replica.inject(DeFault("truncate")),
        "malformed": lambda r: r.replica.inject(DeFault("malformed")),
        "dropped": lambda r: r.replica.inject(DeFault("cut")),
    }


def _valg_faults() -> dict[str, Callable[[Any], Any]]:
    def set_delay(r: Any) -> None:
        r.faults.read_delay = 5.0

    def drop(r: Any) -> None:
        r.faults.drop_after = 0

    return {
        "slow": set_delay,
        "dropped": drop,
        "truncated": lambda r: r.faults.truncated.add("Storkreds"),
        "malformed": lambda r: r.faults.bad_signature.add("Storkreds"),
        "empty": lambda r: r.faults.empty.add("Storkreds"),
    }


REGISTERS = [
    Register(
        "FT", lambda: FtReplica().start(), "{ FT_Aktoertype(first: 3) { nodes { id type } } }",
        _ft_faults(),
    ),
    Register(
        "CZ", lambda: VolbyReplica().start(),
        '{ CZ_TYP_ZASTUP(where: {volby: {eq: "kv2014"}}) { nodes { TYP_ZASTUP_ID NAZ_TYPU } } }',
        _cz_faults(), extra=("CZPREZ",),
    ),
    Register(
        "DE", start_de, "{ DE_Wahlparameter(first: 3) { nodes { wahl wahl_datum } } }",
        _de_faults(), fallback=frozenset({"truncated", "malformed"}),
    ),
    Register(
        "VALG", start_valg, "{ VALG_Storkreds(first: 3) { nodes { Nummer Navn } } }",
        _valg_faults(), fallback=frozenset({"truncated", "malformed", "empty"}), extra=("FT",),
    ),
]  # fmt: skip

CELLS = [
    pytest.param(register, fault, id=f"{register.name}-{fault}")
    for register in REGISTERS
    for fault in [*register.faults, "down"]
]


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
                if fault == "down":
                    await replica.stop()
                else:
                    register.faults[fault](replica)
                await asyncio.sleep(0.4)  # the warm gateway's TTL passes
                _check(await _ask(cold, register.query), register, fault, good["data"], False)
                _check(await _ask(warm, register.query), register, fault, good["data"], True)
