"""The demo keeps its keys across restarts (it used to issue seven new ones at every start, the old ones still
valid), and issues a new one only for a key that no longer works; what it prints to try answers at any hour."""

from __future__ import annotations

import stat
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from api.demo.city import EXAMPLE_POINT, load_demo_city
from api.deps import now


def test_a_restarted_demo_shows_the_same_keys_and_replaces_only_a_revoked_one(runtime, tmp_path):
    kept = tmp_path / "demo-keys.json"
    first = load_demo_city(runtime.repository, runtime.fences, runtime.offers, kept)
    assert {"app", "adops", "Café Tejo"} <= set(first)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # keys: readable by their owner only
    again = load_demo_city(runtime.repository, runtime.fences, runtime.offers, kept)
    assert again == first
    runtime.revoke_key(first["app"][0])
    third = load_demo_city(runtime.repository, runtime.fences, runtime.offers, kept)
    assert third["app"] != first["app"]
    assert {name: pair for name, pair in third.items() if name != "app"} == {
        name: pair for name, pair in first.items() if name != "app"
    }


def test_a_damaged_keys_file_costs_new_keys_not_the_start(runtime, tmp_path):
    kept = tmp_path / "demo-keys.json"
    kept.write_text("{not json")
    keys = load_demo_city(runtime.repository, runtime.fences, runtime.offers, kept)
    assert keys["app"][1].startswith("gt_app_")


@pytest.mark.parametrize("hour", [4, 8, 13, 17, 23])
def test_the_demo_shows_at_least_two_offers_at_its_example_point_at_any_hour(client, runtime, tmp_path, hour):
    """The printed nearby request answers something whenever a new user tries it, and the printed explain
    request says why the rest is not shown (out of hours, say)."""
    keys = load_demo_city(runtime.repository, runtime.fences, runtime.offers, tmp_path / "keys.json")
    runtime.sync_catalog()
    at = datetime(2026, 12, 3, hour, 0, tzinfo=ZoneInfo("Europe/Lisbon"))
    client.app.dependency_overrides[now] = lambda: at
    lat, lon = EXAMPLE_POINT
    params = {"lat": lat, "lon": lon, "device_id": f"new-user-{hour}"}
    app = {"Authorization": f"Bearer {keys['app'][1]}"}
    assert len(client.get("/v1/nearby", params=params, headers=app).json()["offers"]) >= 2
    cafe = {"Authorization": f"Bearer {keys['Café Tejo'][1]}"}
    reasons = {o["title"]: o["reason"] for o in client.get("/v1/explain", params=params, headers=cafe).json()["offers"]}
    assert reasons["2-for-1 lattes"] == ("served" if hour == 8 else "out_of_hours")
