"""One Redis round trip per /v1/nearby: the cap reservation, the request's events, the device's presence and the
transitions it fires travel in one call, and the events it appends are the ones the answer implies (real Redis;
the adapters are only counted, not replaced)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geotarget.runtime import Runtime
from tests.conftest import ADMIN, MerchantKey
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.test_presence import transitions


def counted(runtime: Runtime) -> Counter[str]:
    calls: Counter[str] = Counter()
    server = runtime.server
    assert server.tracker is not None  # triggers are on
    adapters = (
        ("reserve", server.capper, "reserve"),
        ("append", server.sink, "append"),
        ("presence", server.tracker.store, "apply"),
        ("publish", server.tracker.store, "publish"),
    )
    for name, target, method in adapters:
        real = getattr(target, method)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(target, method, counting)
    return calls


def stored_kinds(runtime: Runtime) -> Counter[str]:
    runtime.consumer.drain()
    rows = runtime.events.connect().execute(f"SELECT kind, count(*) FROM '{runtime.events.glob}' GROUP BY kind")
    return Counter(dict(rows.fetchall()))


@pytest.mark.parametrize("listened", [False, True], ids=["nobody listening", "a webhook listening"])
def test_a_capped_answer_reserves_and_logs_in_one_call(
    client: TestClient, runtime: Runtime, cafe: MerchantKey, listened: bool
) -> None:
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    if listened:
        hook = {"url": "https://8.8.8.8/hooks", "events": ["enter"]}
        assert client.post("/v1/webhooks", json=hook, headers=cafe.headers).status_code == 201
    for title in ("latte", "scone", "juice"):
        body = {"title": title, "geofence_ids": [fence], "caps": {"per_device_per_day": 1}}
        assert client.post("/v1/offers", json=body, headers=cafe.headers).status_code == 201
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    headers = {"Authorization": f"Bearer {app}"}
    params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone", "accuracy_m": 10, "limit": 1}
    calls = counted(runtime)

    served = [client.get("/v1/nearby", params=params, headers=headers).json()["offers"] for _ in range(3)]

    # never a separate append, presence or publish call: with a listener the enter is handed on in the same call
    assert calls == Counter(reserve=3)
    assert [t.transition.kind for t in transitions(runtime)] == (["enter"] if listened else [])
    assert [len(s) for s in served] == [1, 1, 0]  # per-merchant limit 2: the third offer never ranks
    logged = stored_kinds(runtime)
    assert logged == Counter(ping=3, impression=2, cap_blocked=3)  # the second blocks one, the third two


def test_audience_targeting_costs_no_extra_round_trip(client: TestClient, runtime: Runtime, cafe: MerchantKey) -> None:
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    headers = {"Authorization": f"Bearer {app}"}
    now = int(time.time())
    pings = [{"device_id": f"regular-{n}", **INSIDE_ALFAMA_CAFE, "accuracy_m": 10, "ts": now} for n in range(12)]
    assert client.post("/v1/pings", json={"pings": pings}, headers=headers).json()["accepted"] == 12
    runtime.consumer.drain()
    rule = {"kind": "visitors", "geofence_ids": [fence]}
    audience = client.post("/v1/audiences", json={"name": "visitors", "rule": rule}, headers=cafe.headers).json()
    for title, side in (("welcome back", "include"), ("first visit", "exclude")):
        body = {"title": title, "geofence_ids": [fence], "targeting": {"audiences": {side: [audience["id"]]}}}
        assert client.post("/v1/offers", json=body, headers=cafe.headers).status_code == 201
    calls = counted(runtime)

    for device, expected in (("regular-1", "welcome back"), ("newcomer", "first visit")):
        params = {**INSIDE_ALFAMA_CAFE, "device_id": device, "accuracy_m": 10}
        offers = client.get("/v1/nearby", params=params, headers=headers).json()["offers"]
        assert [o["title"] for o in offers] == [expected]

    assert calls["reserve"] == 2 and calls["append"] == 0 and calls["presence"] == 0
