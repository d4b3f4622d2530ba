"""Presence: enter, dwell and exit from noisy pings, moved atomically in a real Redis and held equal to the
plain replay of the rules (``triggers.presence.Replay``)."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from geofences import CircleShape, LatLng
from geofences.shapes import moved
from geotarget.catalog.snapshot import Catalog
from geotarget.store import keys
from geotarget.store.redis_client import connect
from geotarget.store.redis_presence import RedisPresence, handed_on
from geotarget.triggers.listening import Listening
from geotarget.triggers.presence import Fired, PresencePing, PresenceRules, Replay, Sighting
from geotarget.triggers.tracker import Fix, PresenceTracker
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

RULES = PresenceRules(max_accuracy_m=200.0, exit_margin_m=25.0, timeout_s=1_800)
CAFE = LatLng(38.7139, -9.1394)
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def catalog():
    catalog = Catalog(11)
    catalog.index.add("cafe", CircleShape(CAFE, 100.0))
    yield catalog
    catalog.close()


@pytest.fixture
def tracker(redis_url, catalog):
    """The engine, webhooks of the apps "app1" and "app9" listening (presence is kept only where one does)."""
    client = connect(redis_url, 2_000)
    engine = PresenceTracker(catalog, RedisPresence(client, f"t{uuid.uuid4().hex[:8]}", RULES), RULES)
    engine.listening = Listening(apps=frozenset({"app1", "app9"}))
    yield engine
    client.close()


def jittered(point: LatLng, rng: random.Random, metres: float = 15.0) -> LatLng:
    return moved(point, rng.uniform(-metres, metres), rng.uniform(-metres, metres))


def crossing_track(crossings: int, rng: random.Random) -> list[Fix]:
    """Walking at 1.5 m/s from 250 m east of the café's centre to its centre and back, one noisy fix a second."""
    fixes, at = [], START
    for leg in range(2 * crossings):
        for step in range(0, 250, 1):
            east = 250 - step * 1.5 if leg % 2 == 0 else step * 1.5
            if not 0 <= east <= 250:
                continue
            fixes.append(Fix(jittered(moved(CAFE, 0, east), rng), at, 8.0))
            at += timedelta(seconds=1)
    return fixes


def reference(tracker: PresenceTracker, fixes: list[Fix]) -> list[tuple[str, str, datetime]]:
    """The rules replayed in memory, with every fence measured by brute force (no index)."""
    state = Replay(RULES)
    found = []
    for fix in sorted(fixes, key=lambda f: f.at):
        seen = []
        distances = {}
        for fence_id in tracker.catalog.index:
            shape = tracker.catalog.index.shape(fence_id)
            assert shape is not None
            inside = shape.covers(fix.point)
            distance = 0.0 if inside else shape.distance_m(fix.point)
            distances[fence_id] = distance
            within = inside or (RULES.accurate(fix.accuracy_m) and distance <= RULES.band_m(fix.accuracy_m))
            if within:
                seen.append(Sighting(fence_id, inside, distance))
        ping = PresencePing(fix.at, fix.accuracy_m, tuple(seen), fix.point)
        found += [(t.kind, t.fence_id, t.at) for t in state.ping(ping, distances)]
    return found


def kinds(fired) -> Counter[str]:
    return Counter(f.transition.kind for f in fired)


def test_a_noisy_walk_across_the_edge_ten_times_enters_ten_times_and_exits_ten_times(tracker):
    fixes = crossing_track(10, random.Random(1))
    fired = [f for fix in fixes for f in tracker.seen("dk1", "phone-1", "app1", [fix])]
    counted = kinds(fired)
    assert counted["enter"] == 10 and counted["exit"] == 10
    assert [(f.transition.kind, f.transition.fence_id, f.transition.at) for f in fired] == reference(tracker, fixes)
    exits = [f.measured(tracker.catalog.index).transition for f in fired if f.transition.kind == "exit"]
    assert all(t.distance_m is not None and t.distance_m > 25.0 for t in exits)  # exits say how far
    assert all(f.device_id == "phone-1" and f.app == "app1" for f in fired)


def test_an_hour_standing_at_the_edge_enters_at_most_once_and_never_exits(tracker):
    rng = random.Random(2)
    edge = moved(CAFE, 0, 100.0)
    fixes = [Fix(jittered(edge, rng), START + timedelta(seconds=s), 10.0) for s in range(3_600)]
    fired = tracker.seen("dk2", "phone-2", "app1", fixes)
    counted = kinds(fired)
    assert counted["enter"] <= 1 and counted["exit"] == 0
    assert tracker.sweep(START + timedelta(seconds=3_601)) == []  # still pinging inside now and then


def test_dwell_fires_once_per_visit(tracker):
    inside = [Fix(CAFE, START + timedelta(seconds=30 * i), 5.0) for i in range(40)]  # 20 minutes inside
    away = [Fix(moved(CAFE, 0, 500.0), START + timedelta(minutes=21), 5.0)]
    again = [Fix(CAFE, START + timedelta(minutes=30, seconds=30 * i), 5.0) for i in range(12)]  # 6 minutes
    fired = tracker.seen("dk3", "phone-3", "app1", inside + away + again)
    assert [(f.transition.kind, f.transition.dwell_s) for f in fired] == [
        ("enter", None),
        ("dwell", 300),
        ("exit", 21 * 60),
        ("enter", None),
        ("dwell", 300),
    ]


def test_pings_out_of_order_give_the_same_events_and_older_pings_change_nothing(tracker):
    fixes = crossing_track(3, random.Random(4))
    shuffled = fixes[:]
    random.Random(5).shuffle(shuffled)
    in_order = tracker.seen("dk4", "phone-4", "app1", fixes)
    out_of_order = tracker.seen("dk5", "phone-5", "app1", shuffled)
    assert [f.transition for f in out_of_order] == [f.transition for f in in_order]
    late = Fix(moved(CAFE, 0, 900.0), fixes[10].at, 5.0)  # far away, but older than what was applied
    assert tracker.seen("dk4", "phone-4", "app1", [late]) == []


def test_two_workers_given_the_same_pings_fire_each_transition_once(redis_url, catalog, tracker):
    fixes = crossing_track(5, random.Random(6))
    second = PresenceTracker(catalog, RedisPresence(connect(redis_url, 2_000), tracker.store.prefix, RULES), RULES)
    fired: list = []
    lock = threading.Lock()

    def worker(t: PresenceTracker) -> None:
        for fix in fixes:
            got = t.seen("dk6", "phone-6", "app1", [fix])
            with lock:
                fired.extend(got)

    threads = [threading.Thread(target=worker, args=(t,)) for t in (tracker, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted((f.transition.at, f.transition.kind) for f in fired)
    assert got == sorted((at, kind) for kind, _, at in reference(tracker, fixes))
    assert kinds(fired) == Counter({"enter": 5, "exit": 5})


def test_a_device_gone_silent_exits_when_its_presence_times_out_and_only_once(tracker):
    fired = tracker.seen("dk7", "phone-7", "app9", [Fix(CAFE, START, 5.0), Fix(CAFE, START + timedelta(minutes=4))])
    assert kinds(fired) == Counter({"enter": 1})
    assert tracker.sweep(START + timedelta(minutes=33)) == []
    swept = tracker.sweep(START + timedelta(minutes=35))
    assert [(f.transition.kind, f.transition.at, f.device_id, f.app) for f in swept] == [
        ("exit", START + timedelta(minutes=34), "phone-7", "app9")
    ]
    assert swept[0].transition.dwell_s == 34 * 60 and swept[0].transition.distance_m == 0.0
    assert tracker.sweep(START + timedelta(hours=3)) == []


def test_a_coarse_ping_neither_enters_nor_exits(tracker):
    assert tracker.seen("dk8", "phone-8", "app1", [Fix(CAFE, START, 500.0)]) == []
    assert kinds(tracker.seen("dk8", "phone-8", "app1", [Fix(CAFE, START + timedelta(seconds=5), 5.0)])) == {"enter": 1}
    far = moved(CAFE, 2_000.0, 0)
    assert tracker.seen("dk8", "phone-8", "app1", [Fix(far, START + timedelta(seconds=9), 900.0)]) == []


def test_a_real_bus_track_enters_and_leaves_its_stops_as_a_brute_force_replay_does(tracker, shared_data):
    bus = pd.read_csv(shared_data / "liverpool_bus_route14_outbound.csv").sort_values("timestamp")
    stops = bus.iloc[:: max(1, len(bus) // 25)]
    for i, row in enumerate(stops.itertuples()):
        tracker.catalog.index.add(f"stop{i:02d}", CircleShape(LatLng(row.latitude, row.longitude), 40.0))
    fixes = [
        Fix(LatLng(row.latitude, row.longitude), datetime.fromisoformat(row.timestamp).replace(tzinfo=UTC), 10.0)
        for row in bus.itertuples()
    ]
    fired = tracker.seen("bus", "bus-4716", "app1", fixes)
    assert [(f.transition.kind, f.transition.fence_id, f.transition.at) for f in fired] == reference(tracker, fixes)
    assert kinds(fired)["enter"] >= 20


def transitions(runtime) -> list[Fired]:
    """What presence handed on to the trigger worker and is still waiting in its stream."""
    stream = keys.transitions_stream(runtime.settings.redis_prefix)
    return [handed_on(fields) for _, fields in runtime.redis.xrange(stream)]


def listened_cafe(client) -> dict[str, str]:
    """A café with a fence and a webhook on all its fences (so presence is kept there); its key's headers."""
    merchant = client.post("/v1/merchants", json={"name": "Café", "timezone": "Europe/Lisbon"}, headers=ADMIN).json()
    cafe = {"Authorization": f"Bearer {merchant['api_key']}"}
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe).status_code == 201
    hook = {"url": "https://8.8.8.8/hooks", "events": ["enter", "exit"]}  # public: accepted, never sent here
    assert client.post("/v1/webhooks", json=hook, headers=cafe).status_code == 201
    return cafe


def test_pings_through_the_api_move_presence_and_hand_transitions_on_with_the_raw_id_until_erased(client, runtime):
    """/v1/nearby and POST /v1/pings both move presence; lmt pings move nothing; an erasure removes the device's
    presence and its transitions still waiting for the trigger worker."""
    listened_cafe(client)
    app = client.post("/v1/apps", json={"name": "Lisbon Guide"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {app['api_key']}"}
    inside = {**INSIDE_ALFAMA_CAFE, "accuracy_m": 5}
    assert client.get("/v1/nearby", params={**inside, "device_id": "quiet", "lmt": "true"}, headers=headers).is_success
    assert transitions(runtime) == []
    assert client.get("/v1/nearby", params={**inside, "device_id": "phone-of-ana"}, headers=headers).is_success
    far = moved(LatLng(INSIDE_ALFAMA_CAFE["lat"], INSIDE_ALFAMA_CAFE["lon"]), 0, 800.0)
    later = int(datetime.now(UTC).timestamp()) + 60
    pings = [{"device_id": "phone-of-ana", "lat": far.lat, "lon": far.lon, "ts": later, "accuracy_m": 10}]
    assert client.post("/v1/pings", json={"pings": pings}, headers=headers).status_code == 200
    moved_ = transitions(runtime)
    assert [(t.transition.kind, t.device_id, t.app) for t in moved_] == [
        ("enter", "phone-of-ana", app["id"]),
        ("exit", "phone-of-ana", app["id"]),
    ]
    assert moved_[1].measured(runtime.catalog.index).transition.distance_m > 700  # as the trigger worker tells
    assert client.delete("/v1/devices/phone-of-ana", headers=ADMIN).status_code == 200
    assert transitions(runtime) == []
    assert not runtime.redis.exists(keys.presence(runtime.settings.redis_prefix, moved_[0].device_key, app["id"]))


def test_bulk_ingest_moves_presence_only_when_asked(client, runtime, tmp_path):
    """Old files should not push: ``geotarget ingest`` moves presence only with ``--presence``."""
    from geotarget.measurement.ingest import ingest_file

    listened_cafe(client)
    inside = LatLng(INSIDE_ALFAMA_CAFE["lat"], INSIDE_ALFAMA_CAFE["lon"])
    far = moved(inside, 0, 800.0)
    start = int(datetime.now(UTC).timestamp()) - 3_600
    rows = [(start + 60 * i, p) for i, p in enumerate([far, inside, inside, far])]
    path = tmp_path / "walk.csv"
    path.write_text("device_id,lat,lon,ts,accuracy_m\n" + "".join(f"walker,{p.lat},{p.lon},{t},8\n" for t, p in rows))
    secret, index = runtime.server.device_secret, runtime.catalog.index
    ingest_file(path, runtime.events, secret, index, set())
    assert transitions(runtime) == []
    ingest_file(path, runtime.events, secret, index, set(), written=runtime.move_presence_bulk)
    assert [(t.transition.kind, t.device_id) for t in transitions(runtime)] == [
        ("enter", "walker"),
        ("exit", "walker"),
    ]
