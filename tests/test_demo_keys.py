"""The demo keeps its keys across restarts (it used to issue seven new ones at every start, the old ones still
valid), and issues a new one only for a key that no longer works."""

from __future__ import annotations

import stat

from api.demo.city import load_demo_city


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
