"""Boolean targeting (``targeting.expr``): all / any / not over tests of what the app sent and of the merchant's
audiences, equal to a plain reference evaluator on random trees and devices (the audience part as Redis' Lua
runs it in the cap reservation), served only where it holds, refused with the path of the field to change, and
named by the explainer."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from geotarget.audiences.gate import gate_for, left_over
from geotarget.catalog.expressions import Expr
from geotarget.serving.targeting import deciding, holds
from geotarget.serving.types import Attributes
from geotarget.store.scripts import script
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.test_api_offers_and_nearby import app_key, clock  # noqa: F401  (fixtures)

EXPR: TypeAdapter[Any] = TypeAdapter(Expr)
WORDS = {"gender": ["f", "m", "x"], "os": ["ios", "android"], "language": ["pt", "en-GB", "es"],
         "interests": ["coffee", "books", "sport"]}  # fmt: skip

ages = st.integers(0, 100)
age_tests = st.one_of(
    st.tuples(ages, ages).map(lambda p: {"attr": "age", "op": "between", "value": sorted(p)}),
    st.builds(lambda op, v: {"attr": "age", "op": op, "value": v}, st.sampled_from(["gte", "lte"]), ages),
)
word_tests = st.sampled_from(sorted(WORDS)).flatmap(
    lambda attr: st.lists(st.sampled_from(WORDS[attr]), min_size=1, max_size=3).map(
        lambda v: {"attr": attr, "op": "in", "value": v}
    )
)
present = st.sampled_from([*WORDS, "age"]).map(lambda attr: {"attr": attr, "op": "present"})


def trees_of(*leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(*leaves),
        lambda kids: st.one_of(
            st.lists(kids, min_size=1, max_size=4).map(lambda k: {"all": k}),
            st.lists(kids, min_size=1, max_size=4).map(lambda k: {"any": k}),
            kids.map(lambda k: {"not": k}),
        ),
        max_leaves=12,
    )


trees = trees_of(age_tests, word_tests, present)
AUDIENCES = {"aud_regulars": 3, "aud_rivals": 1, "aud_suppressed": None}  # live generation (None: under k)
audience_tests = st.sampled_from(sorted(AUDIENCES)).map(lambda a: {"audience": a})
mixed_trees = trees_of(age_tests, word_tests, present, audience_tests, audience_tests)
memberships = st.frozensets(st.sampled_from(["aud_regulars", "aud_rivals", "aud_suppressed"]))
devices = st.fixed_dictionaries(
    {
        "age": st.none() | ages,
        "gender": st.none() | st.sampled_from(["F", "m", "x", "other"]),
        "os": st.none() | st.sampled_from(["iOS", "android", "linux"]),
        "language": st.none() | st.sampled_from(["pt-PT", "en", "en-US", "es_ES", "fr"]),
        "interests": st.frozensets(st.sampled_from(["Coffee", "books", "sport", "art"])),
    }
)


def reference(expr: dict[str, Any], device: dict[str, Any], member_of: frozenset[str] = frozenset()) -> bool:
    """The documented rule, written over the JSON as sent; an audience under k has no members."""
    if "all" in expr:
        return all(reference(e, device, member_of) for e in expr["all"])
    if "any" in expr:
        return any(reference(e, device, member_of) for e in expr["any"])
    if "not" in expr:
        return not reference(expr["not"], device, member_of)
    if "audience" in expr:
        return expr["audience"] in member_of and AUDIENCES[expr["audience"]] is not None
    sent = device[expr["attr"]]
    if sent is None or sent == frozenset():
        return False
    op, value = expr["op"], expr.get("value")
    if op == "present":
        return True
    if op == "between":
        return value[0] <= sent <= value[1]
    if op in ("gte", "lte"):
        return sent >= value if op == "gte" else sent <= value
    primary = {"language": lambda w: w.replace("_", "-").split("-")[0].lower()}.get(expr["attr"], str.lower)
    if expr["attr"] == "interests":
        return bool({w.lower() for w in sent} & {w.lower() for w in value})
    return primary(sent) in {primary(w) for w in value}


@settings(max_examples=400, deadline=None)
@given(trees, devices)
def test_an_expression_holds_exactly_where_the_reference_says(expr, device):
    assert holds(EXPR.validate_python(expr), Attributes(**device)) == reference(expr, device)


LIVE = {a: g for a, g in AUDIENCES.items() if g is not None}
IN_AUDIENCES = script("reserve", entry="return in_audiences(KEYS, ARGV, 2, tonumber(ARGV[1]), 1000) and 1 or 0")


@pytest.fixture(scope="module")
def in_redis(redis_url):
    """reserve.lua's own evaluator, run by Redis over a device's memberships hash (valid until t = 2000)."""
    plain = redis.Redis.from_url(redis_url)
    run = plain.register_script(IN_AUDIENCES)

    def admits(program: tuple[tuple[int, str], ...], member_of: frozenset[str]) -> bool:
        key = "gt-test:expr-memberships"
        plain.delete(key)
        held = {f"{a}:{AUDIENCES[a]}": 2000 for a in member_of if AUDIENCES[a] is not None}
        held |= {f"{a}:{(AUDIENCES[a] or 1) - 1}": 2000 for a in member_of}  # an older generation: not membership
        held["aud_rivals:1"] = held.get("aud_rivals:1", 999)  # a membership that ran out (t = 1000 now)
        plain.hset(key, mapping=held)
        argv = [len(program), *(x for sign, step in program for x in (sign, step))]
        return bool(run(keys=[key], args=argv))

    yield admits
    plain.close()


@settings(max_examples=300, deadline=None)
@given(mixed_trees, devices, memberships)
def test_audiences_in_an_expression_are_decided_with_the_memberships_exactly_as_the_reference(
    in_redis, expr, device, member_of
):
    parsed, said = EXPR.validate_python(expr), Attributes(**device)
    expected = reference(expr, device, member_of)
    known = holds(parsed, said)
    gate = gate_for(None, LIVE, left_over(parsed, deciding(said), LIVE))
    if known is not None:  # what the app sent decides it: no membership is read
        assert known == expected and (gate is None) == expected
        return
    if gate is None or not gate.possible:  # the audiences it tests are under k: decided without memberships
        assert expected is (gate is None)
        return
    held = {a: {g} for a, g in LIVE.items() if a in member_of}
    assert gate.admits(held) == expected
    assert in_redis(gate.program, member_of) == expected  # what the cap reservation runs


def test_an_offer_with_an_expression_is_served_only_where_it_holds(client, cafe, app_key, clock):  # noqa: F811
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    not_ios = {"all": [{"attr": "os", "op": "present"}, {"not": {"attr": "os", "op": "in", "value": ["iOS"]}}]}
    young_or_not_ios = {"any": [{"attr": "age", "op": "lte", "value": 25}, not_ios]}
    body = {"title": "students", "geofence_ids": [fence], "targeting": {"expr": young_or_not_ios}}
    made = client.post("/v1/offers", json=body, headers=cafe.headers)
    assert made.status_code == 201, made.text
    assert made.json()["targeting"]["expr"]["any"][1]["all"][1] == {"not": {"attr": "os", "op": "in", "value": ["ios"]}}
    for device, extra, shown in [
        ("a", {"age": 20, "os": "ios"}, True),
        ("b", {"age": 40, "os": "android"}, True),
        ("c", {"age": 40, "os": "ios"}, False),
        ("d", {"age": 40}, False),  # no os sent: "present" fails
    ]:
        params = {**INSIDE_ALFAMA_CAFE, "device_id": device, **extra}
        offers = client.get("/v1/nearby", params=params, headers=app_key).json()["offers"]
        assert bool(offers) is shown, device
    why = client.get("/v1/explain", params={**INSIDE_ALFAMA_CAFE, "device_id": "c", "age": 40, "os": "ios"},
                     headers=ADMIN).json()["offers"]  # fmt: skip
    assert why[0]["reason"] == "targeting_expr" and "expression" in why[0]["detail"]


@pytest.mark.parametrize(
    ("expr", "field", "says"),
    [
        ({"any": [{"attr": "age", "op": "in", "value": ["x"]}]}, "targeting.expr.any[0].op", "between, gte, lte"),
        ({"all": [{"not": {"attr": "os", "op": "present", "value": ["ios"]}}]}, "targeting.expr.all[0].not.value",
         "present takes no value"),
        ({"attr": "age", "op": "between", "value": [30, 20]}, "targeting.expr.value", "low ≤ high"),
        ({"attr": "shoe_size", "op": "present"}, "targeting.expr.attr", "age"),
        ({"any": []}, "targeting.expr.any", "at least 1"),
    ],
)  # fmt: skip
def test_a_wrong_expression_is_refused_with_the_path_of_the_field_to_change(client, cafe, expr, field, says):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "t", "geofence_ids": [fence], "targeting": {"expr": expr}}
    error = client.post("/v1/offers", json=body, headers=cafe.headers).json()["error"]
    assert (error["field"], "Value error" in error["message"]) == (field, False) and says in error["message"], error


def test_a_tree_too_deep_is_refused(client, cafe):
    deep: dict[str, Any] = {"attr": "age", "op": "present"}
    for _ in range(9):
        deep = {"not": deep}
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "t", "geofence_ids": [fence], "targeting": {"expr": deep}}
    error = client.post("/v1/offers", json=body, headers=cafe.headers).json()["error"]
    assert error["field"] == "targeting.expr" and "8 levels" in error["message"]
