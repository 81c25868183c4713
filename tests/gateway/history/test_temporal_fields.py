"""The temporal fields on an entity's type (gateway/history/temporal_fields.py): where they
come from, their level, the DLS export leaving them out, and queries rewritten to the
declared fields (the instant asked for on the register's wall clock)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.dls.descriptors import load_registers
from gateway.dls.dls_export import export_register
from gateway.history.temporal_fields import Temporals, filled, is_temporal, rewrite
from gateway.model.datamodel import Register
from gateway.model.query import And, Condition, Or, Query, SortKey
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.events.conftest import registers_with
from tests.support import gateway_client, graphql

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
SECURITY = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [{"SecurityLevel": 2, "Entities": ["Aktør.opdateringsdato"]}],
}


def ft(folder: Path) -> Register:
    (register,) = [r for r in load_registers(folder).registers if r.name == "FT"]
    return register


def test_declared_entities_have_them_at_the_level_of_what_they_read() -> None:
    with registers_with("FT", security={"FT": SECURITY}) as folder:
        register = ft(folder)
    aktoer = register.datamodel.entities["Aktør"]
    added = {f.name: f for f in aktoer.fields if is_temporal(f)}
    assert set(added) == {"registreringFra", "registreringTil", "virkningFra", "virkningTil"}
    assert register.field_level("Aktør", added["registreringFra"].source) == 2
    assert register.field_level("Aktør", added["registreringTil"].source) == 2
    assert register.field_level("Aktør", added["virkningFra"].source) == 0
    # registration only: no validity fields
    kinds = {f.name for f in register.datamodel.entities["Aktørtype"].fields if is_temporal(f)}
    assert kinds == {"registreringFra", "registreringTil"}


def test_a_query_on_them_asks_the_declared_fields(tmp_path: Path) -> None:
    with registers_with("FT") as folder:
        register = ft(folder)
    entity = register.datamodel.entities["Aktør"]
    view = Temporals(entity, register.temporal["Aktør"], COPENHAGEN)
    at = dt.datetime(2011, 7, 1, 10, tzinfo=dt.UTC)  # summer time: 12:00 in Copenhagen
    query = Query(
        entity,
        where=And(
            (
                Condition("virkningFra", "lte", at),
                Or((Condition("virkningTil", "eq", None), Condition("virkningTil", "gt", at))),
                Condition("registreringTil", "eq", None),
            )
        ),
        order=(SortKey("registreringFra", True), SortKey("registreringTil"), SortKey("id")),
        fields=frozenset({"id", "registreringFra", "registreringTil"}),
    )
    asked = rewrite(query, view)
    assert asked is not None
    wall = dt.datetime(2011, 7, 1, 12)
    assert asked.where == And(
        (
            Condition("startdato", "lte", wall),
            Or((Condition("slutdato", "eq", None), Condition("slutdato", "gt", wall))),
        )
    )
    assert asked.order == (SortKey("opdateringsdato", True), SortKey("id"))
    assert asked.fields == frozenset({"id", "opdateringsdato"})
    # registreringTil is null now: any other value is no row at all
    assert rewrite(Query(entity, where=Condition("registreringTil", "neq", None)), view) is None
    untouched = Query(entity, where=Condition("id", "eq", 1), fields=frozenset({"id"}))
    assert rewrite(untouched, view) is untouched
    (row,) = filled(
        [{"id": 1, "opdateringsdato": "2011-07-01T12:00:00.5", "startdato": None}], view
    )
    assert row["registreringFra"] == dt.datetime(2011, 7, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)
    assert row["registreringTil"] is None
    assert row["virkningFra"] is None


def test_the_dls_export_leaves_them_out() -> None:
    with registers_with("FT") as folder:
        register = ft(folder)
    pair = export_register(register, {"FT": register})
    for text in (pair.xsd, pair.xmi):
        assert "opdateringsdato" in text
        assert "registreringFra" not in text
        assert "virkningTil" not in text


async def test_a_caller_below_their_level_reads_none_of_them() -> None:
    """With ``opdateringsdato`` at level 2, ``registreringFra`` and ``registreringTil`` are
    refused to a caller of level 0, selected or filtered on; its level-0 fields are not."""
    async with ODataReplica() as replica:
        with registers_with("FT", security={"FT": SECURITY}) as folder:
            overrides = {"FT": {"url": replica.url}}
            async with gateway_client(folder, overrides) as client:
                for query in (
                    "{ FT_Aktoer(first: 1) { nodes { id registreringFra } } }",
                    "{ FT_Aktoer(first: 1) { nodes { id registreringTil } } }",
                    '{ FT_Aktoer(first: 1, where: {registreringFra: {gt: "2020-01-01T00:00:00Z"}})'
                    " { nodes { id } } }",
                ):
                    answer = await graphql(client, query)
                    codes = {e["extensions"]["code"] for e in answer.get("errors", [])}
                    assert codes == {"FORBIDDEN"}, (query, answer)
                answer = await graphql(
                    client, "{ FT_Aktoer(first: 1) { nodes { id virkningFra } } }"
                )
                assert "errors" not in answer, answer
