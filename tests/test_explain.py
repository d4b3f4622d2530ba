"""The decision explainer (``GET /v1/explain``, ``/v1/nearby?explain=true``): for every offer in reach, the
rule that stops it or "served", from a dry run that counts, logs and moves nothing, and whose served list is
what ``/v1/nearby`` then serves to the same device at the same moment."""

from __future__ import annotations

import random

import pytest

from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.test_api_offers_and_nearby import app_key, clock  # noqa: F401  (fixtures)

NEAR = {"lat": 38.71160, "lon": -9.13050}  # a few metres outside the Alfama café's fence


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, max_offers_per_merchant=6)


def put_offers(client, merchant, fence: str) -> dict[str, str]:
    weekend = {"windows": [{"days": ["sat", "sun"], "start": "09:00", "end": "18:00"}]}
    specs = {
        "plain": {"priority": 90},
        "near": {"nearby_m": 200, "priority": 80},
        "weekend": {"schedule": weekend},
        "paused": {"status": "paused"},
        "young": {"targeting": {"age_range": [18, 25]}},
        "once": {"caps": {"per_device_lifetime": 1}, "priority": 70},
        "pushed": {"trigger": {"on": "enter"}},
        "budget": {"daily_budget": 2, "priority": 60},
        "held": {"holdout_pct": 50, "priority": 40},
    }
    made = {}
    for name, fields in specs.items():
        body = {"title": name, "geofence_ids": [fence], **fields}
        answer = client.post("/v1/offers", json=body, headers=merchant.headers)
        assert answer.status_code == 201, answer.text
        made[name] = answer.json()["id"]
    return made


def explained(client, headers, device: str, where=INSIDE_ALFAMA_CAFE, **params) -> dict:
    answer = client.get("/v1/explain", params={**where, "device_id": device, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def served(client, app, device: str, where=INSIDE_ALFAMA_CAFE, **params) -> list[str]:
    answer = client.get("/v1/nearby", params={**where, "device_id": device, **params}, headers=app)
    assert answer.status_code == 200, answer.text
    return [o["offer_id"] for o in answer.json()["offers"]]


def test_each_offer_gets_the_rule_that_stops_it_in_words(client, cafe, app_key, clock):  # noqa: F811
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    ids = put_offers(client, cafe, fence)
    served(client, app_key, "phone-1", limit=20)  # "once" is seen once: capped from now on for this phone
    reasons = {o["title"]: (o["reason"], o["detail"]) for o in explained(client, ADMIN, "phone-1", limit=20)["offers"]}
    assert reasons["paused"][0] == "offer_paused"
    assert reasons["weekend"][0] == "out_of_hours" and "Mon 08:00 at the store, Europe/Lisbon" in reasons["weekend"][1]
    assert reasons["young"][0] == "targeting_age_range"
    assert reasons["pushed"][0] == "push_only"
    assert reasons["once"] == ("capped", "this offer's cap per device per lifetime is reached: 1 of 1 (life)")
    assert reasons["plain"][0] == "served" and reasons["near"][0] == "served"
    outside = {o["title"]: o for o in explained(client, ADMIN, "phone-2", NEAR, limit=20)["offers"]}
    assert outside["plain"]["reason"] == "out_of_reach" and "only inside it" in outside["plain"]["detail"]
    assert outside["near"]["reason"] == "served" and 0 < outside["near"]["distance_m"] < 200
    served(client, app_key, "phone-3", limit=20)  # the budget of 2 a day: phone-1 and phone-3 spent it
    spent = {o["title"]: o for o in explained(client, ADMIN, "phone-4", limit=20)["offers"]}
    assert spent["budget"]["reason"] == "budget_spent" and "2 of 2 impressions" in spent["budget"]["detail"]
    assert {o["offer_id"] for o in spent.values()} == set(ids.values())  # every offer in reach is listed


def test_a_dry_run_counts_nothing_logs_nothing_and_moves_nothing(client, cafe, app_key, clock, runtime):  # noqa: F811
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    ids = put_offers(client, cafe, fence)
    stream = runtime.redis.xlen(runtime.server.capper.stream)
    for _ in range(5):
        assert ids["once"] in explained(client, ADMIN, "fresh", limit=20)["served"]
    assert runtime.redis.xlen(runtime.server.capper.stream) == stream
    assert ids["once"] in served(client, app_key, "fresh", limit=20)  # its lifetime cap of 1 is still free


def test_what_the_explainer_says_is_served_is_what_nearby_serves(client, cafe, bakery, app_key, clock):  # noqa: F811
    """Random devices, points and limits, caps filling up as they go: the dry run first, then the real call."""
    ids = put_offers(client, cafe, client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"])
    other = client.post("/v1/geofences", json={**ALFAMA_CAFE, "properties": {"name": "b"}}, headers=bakery.headers)
    put_offers(client, bakery, other.json()["id"])
    rng = random.Random(7)
    for step in range(60):
        device, where = f"device-{rng.randrange(6)}", rng.choice([INSIDE_ALFAMA_CAFE, NEAR])
        limit = rng.choice([1, 2, 5])
        said = explained(client, ADMIN, device, where, limit=limit)["served"]
        assert said == served(client, app_key, device, where, limit=limit), step
    assert ids["held"]  # with a 50 % holdout, some devices are held out: explained as such, never served


def test_a_merchant_sees_only_its_own_offers_and_an_app_key_cannot_ask(client, cafe, bakery, app_key, clock):  # noqa: F811
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    mine = put_offers(client, cafe, fence)
    other = client.post("/v1/geofences", json={**ALFAMA_CAFE, "properties": {"name": "b"}}, headers=bakery.headers)
    put_offers(client, bakery, other.json()["id"])
    seen = explained(client, cafe.headers, "why-not-here", limit=20)
    assert {o["offer_id"] for o in seen["offers"]} == set(mine.values())
    assert set(seen["served"]) <= set(mine.values())
    alias = client.get(
        "/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": "x", "explain": "true"}, headers=cafe.headers
    )
    assert alias.status_code == 200 and {o["offer_id"] for o in alias.json()["offers"]} == set(mine.values())
    refused = client.get("/v1/explain", params={**INSIDE_ALFAMA_CAFE, "device_id": "x"}, headers=app_key)
    assert refused.status_code == 403


@pytest.mark.parametrize("lmt", ["true", "false"])
def test_held_out_devices_are_explained_as_such(client, cafe, app_key, clock, lmt):  # noqa: F811
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    put_offers(client, cafe, fence)
    outcomes = [
        {o["title"]: o["reason"] for o in explained(client, ADMIN, f"d{n}", limit=20, lmt=lmt)["offers"]}["held"]
        for n in range(20)
    ]
    assert set(outcomes) == {"served", "holdout"}


def test_a_merchant_never_learns_anything_about_a_device_it_names(client, cafe, app_key, clock):  # noqa: F811
    """Caps, audiences and the holdout split are about one device: a merchant that knows an advertising id must
    not read them through the explainer (has this phone seen my offer? is it in my rival-visitors audience?)."""
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    ids = put_offers(client, cafe, fence)
    assert ids["once"] in served(client, app_key, "victim", limit=20)  # its lifetime cap is now used up
    as_admin = {o["title"]: o["reason"] for o in explained(client, ADMIN, "victim", limit=20)["offers"]}
    as_merchant = {o["title"]: o["reason"] for o in explained(client, cafe.headers, "victim", limit=20)["offers"]}
    assert as_admin["once"] == "capped" and as_merchant["once"] == "served"


def test_an_app_key_made_for_debugging_may_ask_and_reads_no_device_either(client, cafe, app_key, clock):  # noqa: F811
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    ids = put_offers(client, cafe, fence)
    assert ids["once"] in served(client, app_key, "victim", limit=20)
    made = client.post("/v1/apps", json={"name": "debugging", "debug": True}, headers=ADMIN).json()
    debug = {"Authorization": f"Bearer {made['api_key']}"}
    seen = {o["title"]: o["reason"] for o in explained(client, debug, "victim", limit=20)["offers"]}
    assert seen["once"] == "served" and seen["paused"] == "offer_paused"
    refused = client.post("/v1/apps", json={"name": "ops", "role": "adops", "debug": True}, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "debug"
