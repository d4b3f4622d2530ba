"""Events into the store and reach reports out, checked against figures computed independently with pandas on
generated data (including duplicated deliveries and the k-suppression edges); pings through the API; erasure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis
import shapely

from api.deps import now
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event
from geotarget.measurement.reports import hidden_buckets
from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE, offer_event, ping_event

K = 5
DAYS = [datetime(2026, 11, 20, tzinfo=UTC) + timedelta(days=d) for d in range(3)]  # Lisbon = UTC in November
ALFAMA = shapely.geometry.shape(ALFAMA_CAFE["geometry"])


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, report_min_devices=K)


@pytest.fixture
def world(client, cafe, runtime):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "latte", "geofence_ids": [fence]}, headers=cafe.headers).json()
    return {"fence": fence, "offer": offer["id"], "merchant": cafe.id}


def generated_events(world, secret: str, rng: random.Random) -> list[Event]:
    """25 devices over 3 days: pings in and around the café with short and long gaps, impressions (day 3 only
    for 3 devices, under k), some of them won bids on exchanges (a bid, then the impression with its clearing
    price), lost bids, cap-blocked serves, and limit-ad-tracking impressions without a device key."""
    events: list[Event] = []
    for d in range(25):
        key = device_key(secret, f"device-{d}")
        for day_index, day in enumerate(DAYS):
            t = day + timedelta(hours=8, minutes=rng.randrange(600))
            for _ in range(rng.randrange(0, 12)):
                t += timedelta(minutes=rng.choice([5, 10, 20, 29, 31, 45, 90]))
                inside = rng.random() < 0.6
                lat = 38.71125 + (rng.uniform(-0.0002, 0.0002) if inside else rng.uniform(0.001, 0.003))
                lon = -9.13015 + (rng.uniform(-0.0003, 0.0003) if inside else 0.0)
                events.append(ping_event(key, t, lat=lat, lon=lon))
            impressions = rng.randrange(0, 7) if day_index < 2 else (rng.randrange(1, 7) if d < 3 else 0)
            for _ in range(impressions):
                at = day + timedelta(hours=7, minutes=rng.randrange(720))
                impression = f"imp-{rng.getrandbits(64):x}"
                if rng.random() < 0.3:  # clicked two minutes later (the click carries only the impression id)
                    click = Event(
                        kind="click",
                        event_id=f"x:{impression}:click",
                        at=at + timedelta(minutes=2),
                        device_key="",
                        lat=0,
                        lon=0,
                        cell="",
                        ref=impression,
                    )
                    events.append(click)
                won = rng.random() < 0.4
                price = rng.choice([0.8, 1.25, 2.0]) if won else None
                events.append(
                    offer_event(
                        kind="impression",
                        event_id=impression,
                        at=at,
                        device_key=key,
                        offer_id=world["offer"],
                        merchant_id=world["merchant"],
                        fence_id=world["fence"],
                        inside=True,
                        distance_m=0.0,
                        price=price,
                    )
                )
                if won or rng.random() < 0.2:  # the bid that won it, or one that lost
                    events.append(
                        offer_event(
                            kind="bid",
                            event_id=f"b:{impression}",
                            at=at - timedelta(seconds=1),
                            device_key=key,
                            offer_id=world["offer"],
                            merchant_id=world["merchant"],
                            fence_id=world["fence"],
                            price=2.5,
                        )
                    )
            if rng.random() < 0.3:
                events.append(
                    offer_event(
                        kind="cap_blocked",
                        event_id=f"blk-{rng.getrandbits(64):x}",
                        at=day + timedelta(hours=9),
                        device_key=key,
                        offer_id=world["offer"],
                        merchant_id=world["merchant"],
                        fence_id=world["fence"],
                    )
                )
    for i in range(4):
        events.append(
            offer_event(
                kind="impression",
                event_id=f"lmt-{i}",
                at=DAYS[0] + timedelta(hours=10),
                device_key="",
                offer_id=world["offer"],
                merchant_id=world["merchant"],
                fence_id=world["fence"],
                inside=True,
                distance_m=0.0,
            )
        )
    return events


def expected_rows(events: list[Event], world, k: int) -> list[dict]:
    """The report, computed without the product's SQL: pandas over the generated events, shapely for 'inside'."""
    ev = pd.DataFrame([e.__dict__ for e in events]).drop_duplicates("event_id")
    ev["day"] = ev["at"].dt.tz_convert("Europe/Lisbon").dt.date
    rows = []
    imp = ev[(ev.kind == "impression") & (ev.offer_id == world["offer"])]
    linked_imp = imp[imp.device_key != ""]
    pings = ev[(ev.kind == "ping") & (ev.device_key != "")].copy()
    pings["inside"] = [ALFAMA.covers(shapely.Point(x, y)) for x, y in zip(pings.lon, pings.lat, strict=True)]
    inside = pings[pings.inside].sort_values(["device_key", "at"])
    gap = inside.groupby("device_key")["at"].diff()
    starts = inside[gap.isna() | (gap >= pd.Timedelta(minutes=30))]
    exposed = []
    for _, visit in starts.iterrows():
        mine = linked_imp[linked_imp.device_key == visit.device_key]
        exposed.append(bool(((mine["at"] < visit["at"]) & (visit["at"] <= mine["at"] + pd.Timedelta(days=7))).any()))
    starts = starts.assign(exposed=exposed)
    for day in [d.date() for d in DAYS]:

        def hide(value, devices):
            return None if 0 < devices < k else value

        day_imp, day_linked = imp[imp.day == day], linked_imp[linked_imp.day == day]
        reach = day_linked.device_key.nunique()
        counts = day_linked.groupby("device_key").size().clip(upper=5).value_counts()
        exact = {label: int(counts.get(n, 0)) for n, label in enumerate(["1", "2", "3", "4", "5+"], start=1)}
        complement = hidden_buckets(exact, k)  # its own rule: tests/test_report_suppression.py
        histogram = {label: None if label in complement else count for label, count in exact.items()}
        blocked = ev[(ev.kind == "cap_blocked") & (ev.day == day)]
        day_inside, day_starts = inside[inside.day == day], starts[starts.day == day]
        after = day_starts[day_starts.exposed]
        clicked = day_imp[day_imp.event_id.isin(ev[ev.kind == "click"].ref)]
        bids = ev[(ev.kind == "bid") & (ev.day == day)]
        won = day_imp[day_imp.price.notna()]
        shown = hide(len(day_imp), reach)
        clicks = None if shown is None else hide(len(clicked), clicked.device_key.nunique())
        row = {
            "period": day.isoformat(),
            "impressions": hide(len(day_imp), reach),
            "pushes": hide(0, reach),  # nothing here is pushed (tests/test_trigger_delivery.py counts pushes)
            "reach": hide(reach, reach),
            "avg_frequency": None if complement else hide(round(len(day_linked) / reach, 3) if reach else None, reach),
            "frequency": histogram if not 0 < reach < k else dict.fromkeys(["1", "2", "3", "4", "5+"]),
            "visitors": hide(day_inside.device_key.nunique(), day_inside.device_key.nunique()),
            "visits": hide(len(day_starts), day_starts.device_key.nunique()),
            "visits_after_exposure": hide(len(after), after.device_key.nunique()),
            "cap_blocked": hide(len(blocked), blocked.device_key.nunique()),
            "clicks": clicks,
            "redemptions": None if shown is None else 0,
            "scans": 0,  # no posters here (tests/test_posters.py counts scans)
            "scan_redemptions": None if shown is None else 0,
            "ctr": round(clicks / shown, 4) if clicks is not None and shown else None,
            "bids": hide(len(bids), bids.device_key.nunique()),
            "wins": None if shown is None else hide(len(won), won.device_key.nunique()),
            "spend": None if shown is None else hide(round(won.price.sum() / 1000, 2), won.device_key.nunique()),
        }
        rows.append(row)
    return rows


def test_reach_report_equals_an_independent_pandas_computation(client, cafe, runtime, world):
    events = generated_events(world, runtime.server.device_secret, random.Random(20261123))
    runtime.server.sink.append(events)
    runtime.server.sink.append(events[::7])  # at-least-once: some events arrive twice
    assert runtime.consumer.drain() == len(events) + len(events[::7])

    report = client.get(
        "/v1/reports/reach",
        params={"offer_id": world["offer"], "from": "2026-11-20", "to": "2026-11-22"},
        headers=cafe.headers,
    )
    assert report.status_code == 200, report.text
    rows = report.json()["rows"]
    for row in rows:
        row.pop("suppressed")
    assert rows == expected_rows(events, world, K)
    day3 = report.json()["rows"][2]
    assert day3["impressions"] is None and "reach" in day3["suppressed"]  # 3 devices < k = 5


@pytest.mark.slow
def test_compaction_merges_small_files_without_changing_reports_and_keeps_erasures(client, cafe, runtime, world):
    events = generated_events(world, runtime.server.device_secret, random.Random(7))
    for start in range(0, len(events), 20):  # many small batches, as a trickle of traffic writes them
        runtime.server.sink.append(events[start : start + 20])
        runtime.consumer.drain()
    params = {"offer_id": world["offer"], "from": "2026-11-20", "to": "2026-11-22"}
    before = client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()
    files_before = len(runtime.events.files())
    assert files_before > 3 * 16

    erased = device_key(runtime.server.device_secret, "device-0")
    merged = runtime.events.compact(erased=[erased])

    assert len(runtime.events.files()) == 3  # one file per day
    assert merged == files_before - 3
    stored = pd.concat(pd.read_parquet(p) for p in runtime.events.files())
    assert erased not in set(stored.device_key)
    assert len(stored) == len(events) - sum(e.device_key == erased for e in events)
    runtime.server.sink.append([e for e in events if e.device_key == erased])  # put device-0 back
    runtime.consumer.drain()
    after = client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()
    assert after == before


def test_the_consumer_lingers_to_write_fewer_larger_files(runtime, world):
    secret = runtime.server.device_secret
    key = device_key(secret, "trickle")
    at = DAYS[0] + timedelta(hours=9)
    sink, consumer = runtime.server.sink, runtime.consumer
    sink.append([ping_event(key, at)])
    for second in range(1, 6):
        t = at + timedelta(seconds=second)
        sink.append([ping_event(key, t)])
    assert consumer.poll(block_ms=10, linger_ms=300) == 6
    assert len(runtime.events.files()) == 1


def test_a_malformed_stream_entry_is_dropped_and_the_rest_of_its_batch_is_stored(runtime, world):
    key = device_key(runtime.server.device_secret, "phone")
    good = [ping_event(key, DAYS[0] + timedelta(minutes=m)) for m in range(3)]
    runtime.server.sink.append(good[:2])
    stream = runtime.consumer.stream
    for junk in ('{"kind": "ping"', '{"kind":"ping","surprise":1}', "[]", "line\nbreak"):
        runtime.consumer.client.xadd(stream, {"e": junk})
    runtime.server.sink.append(good[2:])

    assert runtime.consumer.drain() == 7  # every entry settled, none left to retry forever
    stored = pd.concat(pd.read_parquet(p) for p in runtime.events.files())
    assert sorted(stored.event_id) == sorted(e.event_id for e in good)
    assert [list(f) for f in stored.fences] == [[world["fence"]]] * 3  # pings inside the café


def test_k_suppression_edges_exactly_k_shows_k_minus_one_hides(client, cafe, runtime, world):
    secret = runtime.server.device_secret
    for devices, day in ((K, DAYS[0]), (K - 1, DAYS[1])):
        runtime.server.sink.append(
            [
                offer_event(
                    kind="impression",
                    event_id=f"edge-{day.day}-{d}",
                    at=day + timedelta(hours=12),
                    device_key=device_key(secret, f"e{d}"),
                    lat=38.7,
                    lon=-9.1,
                    offer_id=world["offer"],
                    merchant_id=world["merchant"],
                    fence_id=world["fence"],
                    inside=True,
                    distance_m=0.0,
                )
                for d in range(devices)
            ]
        )
    runtime.consumer.drain()
    rows = client.get(
        "/v1/reports/reach",
        params={"offer_id": world["offer"], "from": "2026-11-20", "to": "2026-11-21"},
        headers=cafe.headers,
    ).json()["rows"]
    assert (rows[0]["impressions"], rows[0]["reach"], rows[0]["suppressed"]) == (K, K, [])
    assert rows[0]["frequency"]["1"] == K
    assert (rows[1]["impressions"], rows[1]["reach"]) == (None, None)
    assert rows[1]["suppressed"][:4] == ["impressions", "pushes", "reach", "avg_frequency"]


def test_csv_and_weekly_reports(client, cafe, runtime, world):
    runtime.server.sink.append(generated_events(world, runtime.server.device_secret, random.Random(1)))
    runtime.consumer.drain()
    csv_text = client.get(
        "/v1/reports/reach",
        params={"offer_id": world["offer"], "from": "2026-11-20", "to": "2026-11-22", "format": "csv"},
        headers=cafe.headers,
    ).text
    header, *lines = csv_text.strip().splitlines()
    assert header.startswith("period,impressions,pushes,reach,avg_frequency,frequency_1")
    assert [line.split(",")[0] for line in lines] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    weekly = client.get(
        "/v1/reports/reach",
        params={"offer_id": world["offer"], "from": "2026-11-20", "to": "2026-11-22", "granularity": "week"},
        headers=cafe.headers,
    ).json()["rows"]
    assert [r["period"] for r in weekly] == ["2026-11-16"]  # the ISO week starting Monday 16 November


def test_reports_are_tenant_scoped_and_adops_see_all(client, cafe, bakery, runtime, world):
    blocked = client.get("/v1/reports/reach", params={"offer_id": world["offer"]}, headers=bakery.headers)
    assert blocked.status_code == 404
    mine = client.get("/v1/reports/reach", headers=cafe.headers).json()
    assert mine["scope"] == {"merchant_id": cafe.id}
    adops = client.post("/v1/apps", json={"name": "ops", "role": "adops"}, headers=ADMIN).json()["api_key"]
    seen = client.get(
        "/v1/reports/reach", params={"merchant_id": cafe.id}, headers={"Authorization": f"Bearer {adops}"}
    )
    assert seen.status_code == 200


def test_pings_are_kept_by_index_idempotent_and_lmt_leaves_nothing(client, runtime, world):
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    headers = {"Authorization": f"Bearer {app}"}
    client.app.dependency_overrides[now] = lambda: datetime(2026, 11, 23, 12, tzinfo=UTC)
    good = {"device_id": "phone", **INSIDE_ALFAMA_CAFE, "ts": "2026-11-23T10:00:00Z", "accuracy_m": 8}
    body = {
        "pings": [
            good,
            {**good, "lat": 123.456, "lon": 678.9},
            {**good, "ts": "2026-11-23T10:00:00"},
            {**good, "device_id": "private", "lmt": True},
            good,
        ]
    }
    answer = client.post("/v1/pings", json=body, headers=headers).json()
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "rejected", "accepted", "accepted"]
    assert answer["results"][1]["error"]["field"] == "pings[1].lat"
    assert "offset" in answer["results"][2]["error"]["message"]
    assert answer["results"][3]["stored"] is False
    assert answer["results"][0]["event_id"] == answer["results"][4]["event_id"]  # same device, same instant
    assert client.post("/v1/pings", json={**good, "ts": 1_795_000_000}, headers=headers).json()["accepted"] == 1
    runtime.consumer.drain()
    with runtime.events.connect() as db:
        stored = db.execute(
            f"SELECT count(DISTINCT event_id), list_sort(list_distinct(flatten(list(fences)))) "
            f"FROM read_parquet('{runtime.events.glob}')"
        ).fetchone()
    assert stored[0] == 2
    assert stored[1] == [world["fence"]]  # each ping is stored with the fences it was inside


def test_erasing_a_device_leaves_nothing_behind(client, runtime, world):
    secret = runtime.server.device_secret
    key = device_key(secret, "erase-me")
    at = DAYS[0] + timedelta(hours=9)
    runtime.server.sink.append([ping_event(key, at)])
    runtime.consumer.drain()
    runtime.server.sink.append([ping_event(key, at + timedelta(minutes=1))])  # still queued
    client.app.dependency_overrides[now] = lambda: datetime(2026, 11, 23, 8, tzinfo=UTC)
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    client.get(
        "/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": "erase-me"}, headers={"Authorization": f"Bearer {app}"}
    )
    raw = redis.Redis.from_url(runtime.redis_url, decode_responses=True)
    runtime.server.global_caps = type(runtime.server.global_caps)(per_device_per_day=100)

    erased = client.delete("/v1/devices/erase-me", headers=ADMIN)
    assert erased.status_code == 200, erased.text
    assert erased.json()["stored_events"] == 1 and erased.json()["stream_entries"] >= 1

    runtime.server.sink.append([ping_event(key, at + timedelta(hours=1))])  # arrives later
    runtime.consumer.drain()
    with runtime.events.connect() as db:
        left = db.execute(
            f"SELECT count(*) FROM read_parquet('{runtime.events.glob}') WHERE device_key = ?", [key]
        ).fetchone()[0]
    assert left == 0
    assert list(raw.scan_iter(match=f"{runtime.settings.redis_prefix}:{{{key}}}:*")) == []
    assert all(key not in str(fields) for _, fields in raw.xrange(f"{runtime.settings.redis_prefix}:events"))


def test_retention_deletes_old_raw_pings_but_keeps_the_visit_figures(client, cafe, runtime, world):
    from geotarget.measurement.privacy import apply_retention

    events = generated_events(world, runtime.server.device_secret, random.Random(7))
    runtime.server.sink.append(events)
    runtime.consumer.drain()
    params = {"offer_id": world["offer"], "from": "2026-11-20", "to": "2026-11-22"}
    before = client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["rows"]

    removed = apply_retention(runtime.events, retention_days=2, today=datetime(2026, 11, 23).date())
    assert removed == sum(1 for e in events if e.kind == "ping" and e.at < datetime(2026, 11, 21, tzinfo=UTC))
    with runtime.events.connect() as db:
        old_pings = db.execute(
            f"SELECT count(*) FROM read_parquet('{runtime.events.glob}') "
            "WHERE kind = 'ping' AND ts < TIMESTAMPTZ '2026-11-21 00:00:00+00'"
        ).fetchone()[0]
    assert old_pings == 0
    after = client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["rows"]
    assert after == before
    assert apply_retention(runtime.events, retention_days=2, today=datetime(2026, 11, 23).date()) == 0
    assert client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["rows"] == before
    assert runtime.events.roll(datetime(2026, 11, 23).date())  # and from rollups of those days
    assert client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["rows"] == before


def test_heatmap_counts_cells_and_suppresses_thin_ones(client, cafe, runtime, world):
    runtime.server.sink.append(generated_events(world, runtime.server.device_secret, random.Random(3)))
    runtime.consumer.drain()
    answer = client.get(
        "/v1/reports/heatmap",
        params={"geofence_id": world["fence"], "res": 9, "from": "2026-11-20", "to": "2026-11-22"},
        headers=cafe.headers,
    )
    assert answer.status_code == 200, answer.text
    cells = answer.json()["features"]
    assert cells and all(f["geometry"]["type"] == "Polygon" for f in cells)
    for cell in cells:
        p = cell["properties"]
        assert p["suppressed"] == (p["devices"] is None)
        if not p["suppressed"]:
            assert p["devices"] >= K and p["pings"] >= p["devices"] >= p["visitors"]
    assert any(not f["properties"]["suppressed"] and f["properties"]["visitors"] for f in cells)
    assert answer.json()["properties"]["fence"]["geometry"] == ALFAMA_CAFE["geometry"]

    other = client.post("/v1/merchants", json={"name": "Other"}, headers=ADMIN).json()["api_key"]
    assert (
        client.get(
            "/v1/reports/heatmap", params={"geofence_id": world["fence"]}, headers={"Authorization": f"Bearer {other}"}
        ).status_code
        == 404
    )
