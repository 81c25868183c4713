"""Translating filter trees to OData v3 ``$filter``: literals are data, never syntax."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import unquote

import pytest
from hypothesis import given, strategies as st

from gateway.dls.edmx import load_edmx
from gateway.model.datamodel import Entity
from gateway.model.query import And, Condition, Or
from resolvers.odata.adapter import build_url, literal, translate
from resolvers.odata.options import parse as parse_options
from tests.support import REGISTERS

MODEL = load_edmx(REGISTERS / "FT" / "rc00001" / "2. Datamodel" / "1.0.0.FT.edmx", "FT", {})
AKTOER: Entity = MODEL.entities["Aktør"]
STEMME: Entity = MODEL.entities["Stemme"]
ALL = frozenset({"substringof", "startswith", "endswith"})
# FT's DateTime values are Copenhagen wall-clock times (its Source.json "timeZone").
FT_ZONE = parse_options(
    json.loads((REGISTERS / "FT" / "rc00001" / "Source.json").read_text("utf-8"))
).time_zone


def test_string_literals_double_quotes() -> None:
    assert literal("NATO's", AKTOER.field("navn")) == "'NATO''s'"
    assert literal("' or 1 eq 1", AKTOER.field("navn")) == "''' or 1 eq 1'"


def test_datetime_literals_are_wall_clock_copenhagen() -> None:
    field = AKTOER.field("opdateringsdato")
    naive = literal(dt.datetime(2019, 3, 1, 12), field, FT_ZONE)
    assert naive == "datetime'2019-03-01T12:00:00.000'"
    aware = dt.datetime(2019, 7, 1, 10, tzinfo=dt.UTC)
    assert literal(aware, field, FT_ZONE) == "datetime'2019-07-01T12:00:00.000'"  # CEST = UTC+2


def test_datetime_literals_without_a_time_zone_option_are_utc() -> None:
    field = AKTOER.field("opdateringsdato")
    aware = dt.datetime(2019, 7, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert literal(aware, field) == "datetime'2019-07-01T10:00:00.000'"


def test_comparisons_functions_and_sets() -> None:
    where = And(
        (
            Condition("navn", "startsWith", "Sara"),
            Or((Condition("typeid", "in", (5, 4)), Condition("periodeid", "eq", None))),
            Condition("id", "nin", ()),
        )
    )
    assert translate(where, AKTOER, ALL) == (
        "(startswith(navn,'Sara') eq true and ((typeid eq 5 or typeid eq 4) or periodeid eq null)"
        " and id ne null)"
    )
    assert translate(Condition("aktoerid", "gte", 13), STEMME, ALL) == "aktørid ge 13"
    assert translate(Condition("id", "in", ()), STEMME, ALL) == "id eq null"


def test_functions_the_upstream_lacks_stay_in_the_gateway() -> None:
    where = And((Condition("navn", "endsWith", "sen"), Condition("typeid", "eq", 5)))
    assert translate(where, AKTOER, frozenset({"substringof"})) is None
    assert translate(Condition("typeid", "eq", 5), AKTOER, frozenset()) == "typeid eq 5"


def test_urls_percent_encode_danish_letters_and_syntax() -> None:
    url = build_url("http://127.0.0.1:1/api/", AKTOER, {"$filter": "navn eq 'Ernst & Young 100%'"})
    assert url.startswith("http://127.0.0.1:1/api/Akt%C3%B8r?$filter=")
    assert "&" not in url.split("?", 1)[1]
    assert unquote(url.split("=", 1)[1]) == "navn eq 'Ernst & Young 100%'"


@given(st.text(max_size=60))
def test_any_text_stays_one_literal(text: str) -> None:
    expression = translate(Condition("navn", "eq", text), AKTOER, ALL)
    assert expression is not None
    prefix = "navn eq '"
    assert expression.startswith(prefix)
    assert expression.endswith("'")
    body = expression[len(prefix) : -1]
    # Inside the literal every quote is doubled, so the literal cannot end early.
    assert body.replace("''", "").count("'") == 0
    assert body.replace("''", "'") == text


@pytest.mark.parametrize("value", [0, -1, 2**31 - 1])
def test_integer_literals(value: int) -> None:
    assert literal(value, STEMME.field("id")) == str(value)
