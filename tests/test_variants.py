"""Creative variants: a device keeps its variant; even and weighted rotation split devices as told; optimized
rotation (Thompson sampling) moves new impressions to the variant that is clicked more, never starving the
other; served offers, events and reports carry the variant."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial

from geotarget.catalog.model import Offer
from geotarget.serving.rotation_loop import learn_once
from geotarget.serving.variants import FLOOR, Rotation, device_point, pick, thompson_shares
from geotarget.store.report_queries import variant_counts
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def offer(rotation: str, *weights: int) -> Offer:
    variants = [{"id": f"v{n}", "title": f"Title {n}", "weight": w} for n, w in enumerate(weights)]
    return Offer.model_validate(
        {
            "id": "off_1",
            "merchant_id": "m",
            "title": "t",
            "geofence_ids": ["f"],
            "timezone": "UTC",
            "variants": variants,
            "rotation": rotation,
            "version": 1,
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def test_a_device_keeps_its_variant_and_devices_split_as_told():
    rotation = Rotation()
    for paced, weights, expected in (("even", (1, 1), (0.5, 0.5)), ("weighted", (3, 1), (0.75, 0.25))):
        o = offer(paced, *weights)
        seen = Counter(rotation.creative(o, f"device-{n}")[1] for n in range(20_000))
        for n, share in enumerate(expected):
            assert abs(seen[f"v{n}"] / 20_000 - share) < 0.02
        assert {rotation.creative(o, "same")[1] for _ in range(50)} == {rotation.creative(o, "same")[1]}
    shown, variant = rotation.creative(offer("even", 1, 1), "device-1")
    assert shown.title == f"Title {variant[1]}" and shown.id == "off_1"


def test_thompson_sampling_moves_impressions_to_the_better_variant_within_a_day_and_keeps_the_floor():
    """Two variants, true click rates 2 % and 4 %, 2,000 impressions an hour, shares updated every 5 minutes."""
    rng = random.Random(11)
    rates = [0.02, 0.04]
    counts = [[0, 0], [0, 0]]
    shares = [0.5, 0.5]
    better_share_by_hour, lowest = [], 1.0
    for _hour in range(24):
        new = Counter()
        for _ in range(12):  # five-minute rounds
            for _ in range(2_000 // 12):
                chosen = 0 if rng.random() < shares[0] / sum(shares) else 1
                counts[chosen][0] += 1
                counts[chosen][1] += rng.random() < rates[chosen]
                new[chosen] += 1
            shares = thompson_shares([tuple(c) for c in counts], rng)
            lowest = min(lowest, *shares)
        better_share_by_hour.append(new[1] / sum(new.values()))
    assert max(better_share_by_hour) >= 0.70 and better_share_by_hour[-1] >= 0.70, better_share_by_hour
    assert lowest >= FLOOR - 1e-9


def test_pick_and_points_are_plain():
    points = [device_point(f"d{n}", "off_1") for n in range(1000)]
    assert min(points) >= 0 and max(points) < 1 and len(set(points)) == 1000
    assert device_point("d1", "off_1") != device_point("d1", "off_2")
    o = offer("even", 1, 1)
    assert pick(o.variants, [1.0, 0.0], 0.99).id == "v0"


def test_served_offers_carry_their_variant_into_events_and_counts(client, cafe, runtime):
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    variants = [{"id": "plain", "title": "Coffee"}, {"id": "bold", "title": "COFFEE!", "body": "now"}]
    body = {"title": "base", "geofence_ids": [fence], "variants": variants, "rotation": "optimized"}
    made = client.post("/v1/offers", json=body, headers=cafe.headers)
    assert made.status_code == 201 and [v["id"] for v in made.json()["variants"]] == ["plain", "bold"]
    titles = Counter()
    for n in range(40):
        (shown,) = client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"d{n}"}, headers=app).json()[
            "offers"
        ]
        assert shown["title"] == {"plain": "Coffee", "bold": "COFFEE!"}[shown["variant_id"]]
        titles[shown["variant_id"]] += 1
    assert set(titles) == {"plain", "bold"}
    runtime.consumer.drain()
    ever = (NOW - timedelta(days=3650), NOW + timedelta(days=3650))
    found = {c.variant: c.impressions for c in variant_counts(runtime.events, [made.json()["id"]], *ever)}
    assert found == dict(titles)


def test_variant_ids_must_differ(client, cafe):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "t", "geofence_ids": [fence], "variants": [{"id": "a"}, {"id": "a"}]}
    error = client.post("/v1/offers", json=body, headers=cafe.headers).json()["error"]
    assert error["field"] == "variants" and "must differ" in error["message"]


def test_the_reach_report_has_a_row_per_variant_and_hides_them_all_under_k(client, cafe, runtime):
    runtime.reports.k = 3  # 30 devices split by a hash under a random secret: each side well over 3
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "base", "geofence_ids": [fence], "variants": [{"id": "a"}, {"id": "b"}], "rotation": "weighted"}
    offer_id = client.post("/v1/offers", json=body, headers=cafe.headers).json()["id"]
    for n in range(30):
        client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"d{n}"}, headers=app)
    runtime.consumer.drain()
    today = datetime.now(UTC).date().isoformat()
    params = {"offer_id": offer_id, "from": today, "to": today}
    report = client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()
    rows = {v["variant_id"]: v for v in report["variants"]}
    assert rows["a"]["impressions"] + rows["b"]["impressions"] == 30 and rows["a"]["clicks"] == 0
    csv = client.get("/v1/reports/reach", params={**params, "format": "csv"}, headers=cafe.headers).text
    assert "variant a," in csv and "variant b," in csv
    runtime.reports.k = 100  # now each variant is under k: all hidden, not only the smaller one
    hidden = client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["variants"]
    assert all(v["impressions"] is None and v["reach"] is None for v in hidden)


def test_the_variants_report_gives_each_variant_its_live_share_and_click_rate(client, cafe, bakery, runtime):
    runtime.reports.k = 3
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    variants = [{"id": "plain", "title": "Coffee"}, {"id": "bold", "title": "COFFEE!"}]
    body = {"title": "base", "geofence_ids": [fence], "variants": variants, "rotation": "optimized"}
    offer_id = client.post("/v1/offers", json=body, headers=cafe.headers).json()["id"]
    clicked = Counter()
    for n in range(30):
        params = {**INSIDE_ALFAMA_CAFE, "device_id": f"d{n}"}
        (shown,) = client.get("/v1/nearby", params=params, headers=app).json()["offers"]
        if shown["variant_id"] == "bold" or n % 5 == 0:
            click = {"impression_id": shown["impression_id"], "type": "click"}
            assert client.post("/v1/interactions", json=click, headers=app).status_code == 200
            clicked[shown["variant_id"]] += 1
    runtime.consumer.drain()
    learn_once(runtime.server, partial(variant_counts, runtime.events), datetime.now(UTC))

    live = client.get("/v1/reports/variants", params={"offer_id": offer_id}, headers=cafe.headers).json()
    rows = {v["variant_id"]: v for v in live["variants"]}
    assert (live["rotation"], [v["title"] for v in live["variants"]]) == ("optimized", ["Coffee", "COFFEE!"])
    assert rows["plain"]["share"] == rows["bold"]["share"] == 0.5  # burning in: 30 impressions, not 200 each
    assert rows["plain"]["impressions"] + rows["bold"]["impressions"] == 30
    assert {name: rows[name]["clicks"] for name in rows} == {"plain": clicked["plain"], "bold": clicked["bold"]}
    assert rows["bold"]["ctr"] == 1.0 and rows["plain"]["ctr"] < 1.0

    (offer_now,) = runtime.server.catalog.optimized_offers()
    runtime.server.rotation.learn([offer_now], {(offer_id, "plain"): (1_000, 20), (offer_id, "bold"): (1_000, 60)})
    moved = client.get("/v1/reports/variants", params={"offer_id": offer_id}, headers=ADMIN).json()["variants"]
    assert moved[1]["share"] > 0.9 and moved[0]["share"] >= FLOOR  # towards clicks, never below the floor
    assert client.get("/v1/reports/variants", params={"offer_id": offer_id}, headers=bakery.headers).status_code == 404
    runtime.reports.k = 100
    hidden = client.get("/v1/reports/variants", params={"offer_id": offer_id}, headers=cafe.headers).json()
    assert all(v["clicks"] is None and v["share"] for v in hidden["variants"])  # shares are not about devices
