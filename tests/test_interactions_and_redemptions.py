"""Interactions (click, redeem, dismiss) sent by apps, and redemption codes typed at merchants' tills: signed
impression ids, idempotent rows, unique codes that survive Redis and redeem once, and the reach report's clicks,
redemptions and click-through rate (real Redis, real SQL)."""

from __future__ import annotations

import collections
import itertools
import threading
from datetime import UTC, datetime

import pytest
import redis

from geotarget.errors import Conflict
from geotarget.measurement.redemptions import ALPHABET, IssuedCode, new_code, normalized
from geotarget.store.database import make_engine, migrate, session_factory
from geotarget.store.redemption_codes import CodeTable
from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, report_min_devices=1)


def new_app(client) -> dict[str, str]:
    key = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    return {"Authorization": f"Bearer {key}"}


def offer_shown(client, cafe, app, device="phone", **fields):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "latte", "geofence_ids": [fence], **fields}, headers=cafe.headers)
    assert offer.status_code == 201, offer.text
    params = {**INSIDE_ALFAMA_CAFE, "device_id": device, "accuracy_m": 10}
    (shown,) = client.get("/v1/nearby", params=params, headers=app).json()["offers"]
    return offer.json(), shown


def reach(client, cafe, offer_id):
    today = datetime.now(UTC).date().isoformat()
    params = {"offer_id": offer_id, "from": today, "to": today}
    return client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["totals"]


def test_a_click_counts_once_however_often_it_is_sent(client, cafe, runtime):
    app = new_app(client)
    offer, shown = offer_shown(client, cafe, app)
    click = {"impression_id": shown["impression_id"], "type": "click"}
    for _ in range(3):
        answer = client.post("/v1/interactions", json=click, headers=app).json()
        assert (answer["accepted"], answer["rejected"]) == (1, 0)
    runtime.consumer.drain()
    totals = reach(client, cafe, offer["id"])
    assert (totals["impressions"], totals["clicks"], totals["ctr"]) == (1, 1, 1.0)


def test_forged_foreign_and_malformed_rows_are_refused_each_in_its_row(client, cafe, runtime):
    app, other_app = new_app(client), new_app(client)
    _, shown = offer_shown(client, cafe, app)
    real = shown["impression_id"]
    forged = real[:-1] + ("0" if real[-1] != "0" else "1")
    rows = [
        {"impression_id": real, "type": "dismiss"},
        {"impression_id": forged, "type": "click"},
        {"impression_id": "not-an-id", "type": "click"},
        {"impression_id": real, "type": "like"},
        {"impression_id": real, "type": "click", "ts": "2020-01-01T00:00:00Z"},
        {"impression_id": real, "type": "click", "extra": 1},
        "click",
    ]
    answer = client.post("/v1/interactions", json={"interactions": rows}, headers=app).json()
    assert answer["accepted"] == 1
    errors = {r["index"]: (r["error"]["code"], r["error"]["field"]) for r in answer["results"] if r["error"]}
    assert errors == {
        1: ("unknown_impression", "interactions[1].impression_id"),
        2: ("unknown_impression", "interactions[2].impression_id"),
        3: ("invalid", "interactions[3].type"),
        4: ("invalid", "interactions[4].ts"),
        5: ("invalid", "interactions[5].extra"),
        6: ("invalid", "interactions[6]"),
    }
    elsewhere = client.post("/v1/interactions", json={"impression_id": real, "type": "click"}, headers=other_app)
    assert elsewhere.json()["results"][0]["error"]["code"] == "unknown_impression"  # issued to another app
    assert client.post("/v1/interactions", content=b"{", headers=app).status_code == 422
    too_many = {"interactions": [{"impression_id": real, "type": "click"}] * 1001}
    assert client.post("/v1/interactions", json=too_many, headers=app).status_code == 422


def test_a_unique_code_redeems_once_and_outlives_redis(client, cafe, bakery, runtime, redis_url):
    app = new_app(client)
    offer, shown = offer_shown(client, cafe, app, redemption={"unique": True})
    code = shown["redemption_code"]
    assert len(code) == 14 and code[4] == code[9] == "-"
    runtime.consumer.drain()  # the consumer records the code in SQL
    plain = redis.Redis.from_url(redis_url)
    for key in plain.scan_iter(f"{runtime.settings.redis_prefix}:*"):
        plain.delete(key)  # Redis lost everything (restarted without persistence)

    assert client.post("/v1/redemptions", json={"code": code}, headers=bakery.headers).status_code == 404
    done = client.post("/v1/redemptions", json={"code": code.lower().replace("-", " ")}, headers=cafe.headers)
    assert done.status_code == 200, done.text
    assert done.json()["offer"]["id"] == offer["id"] and done.json()["impression_id"] == shown["impression_id"]
    again = client.post("/v1/redemptions", json={"code": code}, headers=cafe.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert client.post("/v1/redemptions", json={"code": "0000-0000-0000"}, headers=cafe.headers).status_code == 404
    runtime.consumer.drain()
    assert reach(client, cafe, offer["id"])["redemptions"] == 1


def test_a_static_code_is_shown_to_everyone_and_redeems_any_number_of_times(client, cafe, runtime):
    app = new_app(client)
    offer, shown = offer_shown(client, cafe, app, redemption={"code": "LATTE2"})
    assert shown["redemption_code"] == "LATTE2"
    for _ in range(2):
        done = client.post("/v1/redemptions", json={"code": "latte2"}, headers=cafe.headers)
        assert done.status_code == 200 and done.json()["impression_id"] is None
    runtime.consumer.drain()
    assert reach(client, cafe, offer["id"])["redemptions"] == 2
    bad = client.post(
        "/v1/offers",
        json={"title": "x", "geofence_ids": [offer["geofence_ids"][0]], "redemption": {"code": "A", "unique": True}},
        headers=cafe.headers,
    )
    assert bad.status_code == 422


def test_two_tills_redeeming_one_code_at_once_one_wins(database_url, tmp_path):
    engine = make_engine(database_url)
    migrate(engine)
    table = CodeTable(session_factory(engine))
    code = normalized(new_code())
    table.record([IssuedCode(code, "off_1", "mer_1", "imp_1", datetime.now(UTC))])
    table.record([IssuedCode(code, "off_1", "mer_1", "imp_1", datetime.now(UTC))])  # a batch stored twice
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def till() -> None:
        barrier.wait()
        try:
            table.redeem(code, "mer_1", datetime.now(UTC))
            outcomes.append("redeemed")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=till) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["redeemed"]
    engine.dispose()


@pytest.mark.slow
def test_unique_codes_never_repeat_in_a_million_draws_and_say_nothing_of_each_other():
    codes = [normalized(new_code()) for _ in range(1_000_000)]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 12 and set(c) <= set(ALPHABET) for c in codes[:1000])
    # every symbol equally likely at every position: a chi-square test per position (31 degrees of freedom,
    # 70 is beyond the 0.9999 quantile), and consecutive codes agree at a position no more than chance (1/32)
    for position in range(12):
        counts = collections.Counter(c[position] for c in codes)
        expected = len(codes) / 32
        assert sum((counts[s] - expected) ** 2 / expected for s in ALPHABET) < 70
    same = sum(a[i] == b[i] for a, b in itertools.pairwise(codes) for i in range(12))
    assert abs(same / (12 * (len(codes) - 1)) - 1 / 32) < 0.001
