"""Erasing a device deletes every Redis key holding something of it, and only those, by the names its registry
lists: never by scanning the keyspace, so an erasure costs the same beside a million other keys. Keys written
before registries existed are indexed once, and erased by scanning until then."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from geotarget.measurement.devices import device_key
from geotarget.runtime import Runtime
from geotarget.store import keys
from geotarget.store.redis_client import connect_blocking
from geotarget.store.redis_devices import RedisDeviceData
from geotarget.store.scripts import script
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

CAPPED = {"title": "2-for-1 latte", "caps": {"per_device_per_day": 5, "per_device_lifetime": 50}}


def recorded(url: str) -> tuple[redis.Redis, list[str]]:
    """A client to the real Redis that notes every command it sends."""
    client = connect_blocking(url)
    sent: list[str] = []
    execute = client.execute_command

    def noting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return execute(*args, **options)

    client.execute_command = noting  # type: ignore[method-assign]
    return client, sent


def own_keys(runtime: Runtime, device_id: str) -> set[str]:
    """What a scan finds of one device (the test looks; the product never does)."""
    root = keys.device_root(runtime.settings.key_prefix(), device_key(runtime.server.device_secret, device_id))
    return {k for k in runtime.redis.scan_iter(match=root + "*", count=1_000)} - {root + "keys"}


@pytest.fixture
def served(client: Any, runtime: Runtime) -> dict[str, str]:
    """Two devices served a capped offer in a fence a webhook listens to: each has counters and presence."""
    merchant = client.post("/v1/merchants", json={"name": "Café", "timezone": "Europe/Lisbon"}, headers=ADMIN).json()
    cafe = {"Authorization": f"Bearer {merchant['api_key']}"}
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe).json()
    assert client.post("/v1/offers", json={**CAPPED, "geofence_ids": [fence["id"]]}, headers=cafe).status_code == 201
    hook = {"url": "https://8.8.8.8/hooks", "events": ["enter", "exit"]}  # public: accepted, never sent here
    assert client.post("/v1/webhooks", json=hook, headers=cafe).status_code == 201
    app = client.post("/v1/apps", json={"name": "Lisbon Guide"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {app['api_key']}"}
    for device in ("ana", "bob"):
        answer = client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": device}, headers=headers)
        assert answer.json()["offers"], answer.text
    return headers


def test_an_erasure_deletes_every_key_of_the_device_and_no_other_without_a_scan(client, runtime, served):
    ana, bob = own_keys(runtime, "ana"), own_keys(runtime, "bob")
    assert {k.split("}:", 1)[1].split(":", 1)[0] for k in ana} == {"cap", "presence"}
    recording, sent = recorded(runtime.redis_url)
    erased = RedisDeviceData(recording, runtime.settings.key_prefix()).erase(
        device_key(runtime.server.device_secret, "ana")
    )
    assert erased[0] == len(ana)
    assert own_keys(runtime, "ana") == set() and own_keys(runtime, "bob") == bob
    assert not {"SCAN", "KEYS"} & set(sent), sent
    member = keys.presence_member(device_key(runtime.server.device_secret, "ana"), "")
    assert all(not m.startswith(member.rstrip("|")) for m in runtime.redis.zrange(
        keys.presence_due(runtime.settings.key_prefix()), 0, -1
    ))  # fmt: skip


def test_a_registry_outlives_every_key_it_names(client, runtime, served):
    """A lifetime counter never expires: nor does the registry that names it."""
    registry = keys.registry(runtime.settings.key_prefix(), device_key(runtime.server.device_secret, "ana"))
    named = {m for m in runtime.redis.smembers(registry)}
    assert named == own_keys(runtime, "ana")
    assert runtime.redis.ttl(registry) == -1 and any(runtime.redis.ttl(k) == -1 for k in named)


@pytest.mark.slow
def settled(client: redis.Redis, timeout_s: float = 60.0) -> None:
    """Wait out an append-only-file rewrite the million keys set off (the embedded server forks for it): the test
    times an erasure, not a fork of a gigabyte."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        persistence = client.info("persistence")
        if not persistence.get("aof_rewrite_in_progress") and not persistence.get("aof_rewrite_scheduled"):
            return
        time.sleep(0.1)


def test_an_erasure_among_a_million_unrelated_keys_takes_under_50_ms(client, runtime, served):
    filler, patient = f"{runtime.settings.key_prefix()}-filler", connect_blocking(runtime.redis_url)
    pipe = patient.pipeline(transaction=False)
    for chunk in range(100):
        pipe.mset({f"{filler}:{{d{chunk * 10_000 + i}}}:cap:o:day": 1 for i in range(10_000)})
    pipe.execute()
    try:
        assert patient.dbsize() >= 1_000_000
        settled(patient)
        recording, sent = recorded(runtime.redis_url)
        data = RedisDeviceData(recording, runtime.settings.key_prefix())
        started = time.perf_counter()
        data.erase(device_key(runtime.server.device_secret, "ana"))
        took_ms = (time.perf_counter() - started) * 1000
        assert own_keys(runtime, "ana") == set()
        assert not {"SCAN", "KEYS"} & set(sent) and took_ms <= 50, (took_ms, sent)
    finally:
        for chunk in range(100):
            patient.unlink(*(f"{filler}:{{d{chunk * 10_000 + i}}}:cap:o:day" for i in range(10_000)))
        patient.close()


def test_keys_from_before_registries_are_erased_by_scanning_until_indexed_once(runtime):
    prefix = runtime.settings.key_prefix()
    runtime.redis.delete(keys.devices_indexed(prefix))
    old = {}
    for device in ("old-1", "old-2"):
        key = device_key(runtime.server.device_secret, device)
        counter = f"{keys.device_root(prefix, key)}cap:offer:o_1:2026-12-03"
        runtime.redis.set(counter, 3, ex=3_600)
        runtime.redis.zadd(f"{counter}:pending", {"b_1": 1})
        runtime.redis.hset(keys.presence(prefix, key, "key_1"), mapping={"_ts": 1})
        runtime.redis.hset(keys.bid(prefix, f"bid-of-{device}"), mapping={"d": key, "u": 1})
        runtime.redis.expire(keys.bid(prefix, f"bid-of-{device}"), 7_200)
        old[device] = key
    data = RedisDeviceData(runtime.redis, prefix)
    assert data.erase(old["old-1"])[0] == 4  # counter, its held slots, presence, bid record
    assert own_keys(runtime, "old-1") == set() and not runtime.redis.exists(keys.bid(prefix, "bid-of-old-1"))

    assert data.index_devices() == 4 and data.index_devices() == 0  # once per deployment
    registry = keys.registry(prefix, old["old-2"])
    assert {m for m in runtime.redis.smembers(registry)} == {
        f"{keys.device_root(prefix, old['old-2'])}cap:offer:o_1:2026-12-03",
        keys.presence(prefix, old["old-2"], "key_1"),
        keys.bid(prefix, "bid-of-old-2"),
    }
    assert runtime.redis.ttl(registry) == -1  # the presence hash had no expiry
    assert data.erase(old["old-2"])[0] == 4
    assert own_keys(runtime, "old-2") == set() and not runtime.redis.exists(keys.bid(prefix, "bid-of-old-2"))


def test_a_registry_forgets_names_whose_keys_are_gone(runtime):
    """A lifetime cap keeps a registry for years: the day counters it named meanwhile do not pile up in it."""
    prefix = runtime.settings.key_prefix()
    key = device_key(runtime.server.device_secret, "regular")
    registry, root = keys.registry(prefix, key), keys.device_root(prefix, key)
    remember = runtime.redis.register_script(script("registry", entry="remember(KEYS[1], KEYS[2], tonumber(ARGV[1]))"))
    runtime.redis.set(f"{root}cap:offer:o_1:lifetime", 1)
    remember(keys=[registry, f"{root}cap:offer:o_1:lifetime"], args=[0])
    runtime.redis.zadd(f"{root}cap:offer:o_2:held", {"b_1": 1})  # held slots only: the counter is made on a win
    remember(keys=[registry, f"{root}cap:offer:o_2:held"], args=[60])
    for day in range(365):  # each day's counter, long expired
        remember(keys=[registry, f"{root}cap:offer:o_1:day-{day}"], args=[86_400])
    assert runtime.redis.scard(registry) < 32
    assert {f"{root}cap:offer:o_1:lifetime", f"{root}cap:offer:o_2:held"} <= runtime.redis.smembers(registry)
    assert runtime.redis.ttl(registry) == -1
