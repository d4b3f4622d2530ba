"""geotarget on a real 3-master Redis Cluster (started here on loopback), with one shard (every key of the
deployment in one slot) and with 64 (each device's keys in its shard's slot, budgets in the deployment's): caps,
the global cap and daily budgets hold under 200-300 simultaneous requests through a 2-worker server; events reach
the event store; erasure, rate limits, key revocation, webhooks and bids work; no call is ever CROSSSLOT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from geotarget.store import keys
from geotarget.store.redis_client import close, connect
from tests.cluster import redis_cluster
from tests.conftest import ADMIN, ADMIN_KEY
from tests.fixtures import INSIDE_ALFAMA_CAFE
from tests.servers import serving
from tests.test_caps_under_concurrency import burst, served_count, setup_city
from tests.test_openrtb_concurrency import burst as bid_burst
from tests.test_openrtb_concurrency import send
from tests.test_openrtb_concurrency import setup as setup_bidding

pytestmark = pytest.mark.slow
REPETITIONS = 5


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as url:
        yield url


@pytest.fixture(params=["1", "64"], ids=["one-shard", "64-shards"])
def shards(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _slots(url: str, prefix: str) -> set[int]:
    """The hash slots of every key of one deployment on the cluster."""
    client: Any = connect(url, 2_000)
    try:
        return {client.cluster_keyslot(name) for name in client.scan_iter(match=f"*{prefix}*")}
    finally:
        close(client)


def test_a_per_device_cap_holds_on_a_cluster(tmp_path: Path, cluster_url: str, shards: str) -> None:
    with serving(tmp_path, cluster_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000", shards=shards) as [base]:
        app = setup_city(base, [{"title": "latte", "caps": {"per_device_per_day": 3}}])
        totals = [served_count(asyncio.run(burst(base, app, f"device-{i}", 300))) for i in range(REPETITIONS)]
    assert totals == [3] * REPETITIONS


def test_the_global_cap_and_a_daily_budget_hold_on_a_cluster(tmp_path: Path, cluster_url: str, shards: str) -> None:
    offers = [{"title": "budgeted", "priority": 90, "daily_budget": 7}, {"title": "free", "priority": 10}]
    with serving(
        tmp_path, cluster_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000", global_cap_per_device_per_day="4",
        shards=shards,
    ) as [base]:  # fmt: skip
        app = setup_city(base, offers)
        answers = [asyncio.run(burst(base, app, f"device-{i}")) for i in range(REPETITIONS)]
    assert [served_count(a) for a in answers] == [4] * REPETITIONS
    titles = [o["title"] for device in answers for answer in device for o in answer["offers"]]
    assert titles.count("budgeted") == 7  # the budget's counter is shared by every device: still exact


def test_events_erasure_limits_and_revocation_work_on_a_cluster(tmp_path: Path, cluster_url: str, shards: str) -> None:
    log, prefix = tmp_path / "serve.log", f"evt{shards}{time.time_ns() % 10**6}"
    with serving(
        tmp_path / "data", cluster_url, ADMIN_KEY, workers=2, log=log, redis_timeout_ms="2000", report_min_devices="1",
        shards=shards, redis_prefix=prefix,
    ) as [base]:  # fmt: skip
        app = setup_city(base, [{"title": "latte", "caps": {"per_device_per_day": 5}}])  # a counter to erase
        merchant = httpx.get(f"{base}/v1/merchants", headers=ADMIN).json()["merchants"][0]["id"]
        params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone-on-a-cluster"}
        assert httpx.get(f"{base}/v1/nearby", params=params, headers=app).json()["offers"]
        deadline = time.monotonic() + 30
        while not any(
            row["impressions"]
            for row in httpx.get(f"{base}/v1/reports/reach", params={"merchant_id": merchant}, headers=ADMIN).json()[
                "rows"
            ]
        ):
            assert time.monotonic() < deadline, f"the event consumer did not store the impression: {log.read_text()}"
            time.sleep(0.3)

        erased = httpx.delete(f"{base}/v1/devices/phone-on-a-cluster", headers=ADMIN)
        assert erased.status_code == 200 and erased.json()["redis_keys"] >= 1

        keys = httpx.get(f"{base}/v1/keys", headers=ADMIN).json()["keys"]
        app_id = next(k["id"] for k in keys if k["role"] == "app")
        assert httpx.delete(f"{base}/v1/keys/{app_id}", headers=ADMIN).status_code == 204
        time.sleep(1.0)
        assert {httpx.get(f"{base}/v1/nearby", params=params, headers=app).status_code for _ in range(6)} == {401}
    slots = _slots(cluster_url, prefix)
    assert len(slots) == 1 if shards == "1" else 2 <= len(slots) <= 65  # its shards' and the deployment's


def test_a_revocation_reaches_another_worker_by_the_clusters_pubsub(
    tmp_path: Path, cluster_url: str, shards: str
) -> None:
    """The change notice (PUBLISH) on a cluster: the second worker polls only every 30 s, so within a second
    it can only have heard the notice."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from geotarget.runtime import Runtime
    from tests.conftest import make_settings

    shared = make_settings(tmp_path, cluster_url, f"sqlite:///{tmp_path / 'db.sqlite'}", shards=int(shards))
    slow_poll = shared.model_copy(update={"sync_poll_s": 30.0})
    first, second = Runtime.open(shared), Runtime.open(slow_poll)
    try:
        with TestClient(create_app(shared, first)) as a, TestClient(create_app(slow_poll, second)) as b:
            app = a.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()
            headers = {"Authorization": f"Bearer {app['api_key']}"}
            params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone"}
            assert b.get("/v1/nearby", params=params, headers=headers).status_code == 200
            assert a.delete(f"/v1/keys/{app['id']}", headers=ADMIN).status_code == 204
            revoked_at = time.monotonic()
            while b.get("/v1/nearby", params=params, headers=headers).status_code == 200:
                assert time.monotonic() - revoked_at < 1.0, "worker b did not hear of the revocation"
                time.sleep(0.02)
    finally:
        first.close()
        second.close()


def test_webhooks_are_retried_and_delivered_once_on_a_cluster(tmp_path: Path, cluster_url: str, shards: str) -> None:
    """Presence, the trigger loop and the delivery scripts (retry schedule, settle) on the cluster."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from geotarget.runtime import Runtime
    from tests.conftest import make_settings
    from tests.test_webhooks import INSIDE, subscribe, world
    from tests.webhook_receiver import receiver

    settings = make_settings(
        tmp_path, cluster_url, f"sqlite:///{tmp_path / 'db.sqlite'}", webhook_allow_private=True,
        webhook_retry_base_s=0.2, webhook_claim_idle_s=1, report_min_devices=1, shards=int(shards),
    )  # fmt: skip
    runtime = Runtime.open(settings, deliver=True)
    try:
        with TestClient(create_app(settings, runtime)) as client, receiver(answers=[500]) as end:
            _, app_headers, _, _ = world(client)
            hook = subscribe(client, app_headers, end.url, ["enter"])
            assert client.get("/v1/nearby", params={**INSIDE, "device_id": "d1"}, headers=app_headers).is_success
            got = end.wait_for(lambda r: len(r) >= 2)
            assert len(got) == 2 and got[0].event["id"] == got[1].event["id"]
            listed = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=app_headers).json()["deliveries"]
            assert [(d["status"], d["attempts"]) for d in listed] == [("delivered", 2)]
    finally:
        runtime.close()


def test_bids_hold_and_settle_on_a_cluster(tmp_path: Path, cluster_url: str, shards: str) -> None:
    """The hold and settle scripts reach the pending sets and bid records they derive from their keys: in the
    deployment's slot, so never a cross-slot error."""
    with serving(tmp_path, cluster_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000", shards=shards) as [base]:
        exchange = setup_bidding(base)
        bids = asyncio.run(bid_burst(base, exchange, "phone-on-cluster"))
        assert len(bids) == 3
        assert asyncio.run(send(base, [bids[0]["nurl"]], "1.0")) == ["settled"]
        assert asyncio.run(send(base, [b["lurl"] for b in bids[1:]], "")) == ["settled"] * 2
        assert len(asyncio.run(bid_burst(base, exchange, "phone-on-cluster"))) == 2


def _primaries(url: str) -> list[redis.Redis]:
    client: Any = connect(url, 2_000)
    try:
        return [redis.Redis(node.host, node.port, decode_responses=True) for node in client.get_primaries()]
    finally:
        close(client)


def _device_calls(node: redis.Redis) -> int:
    stats = node.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def test_64_shards_spread_the_devices_keys_and_calls_over_every_master(tmp_path: Path, cluster_url: str) -> None:
    """The default prefix's 64 shards on the three masters' slot ranges: each master owns 20-45 % of them, and holds
    and serves that share of 600 random devices' keys and calls (give or take 8 points of sampling noise)."""
    masters = _primaries(cluster_url)
    with serving(tmp_path, cluster_url, ADMIN_KEY, workers=2, shards="64", redis_prefix="gt") as [base]:
        app = setup_city(base, [{"title": "latte", "caps": {"per_device_per_day": 3}}])
        before = [_device_calls(m) for m in masters]
        with httpx.Client(base_url=base, headers=app) as client:
            for i in range(600):
                params = {**INSIDE_ALFAMA_CAFE, "device_id": f"phone-{i}"}
                assert client.get("/v1/nearby", params=params).json()["offers"]
        calls = [_device_calls(m) - b for m, b in zip(masters, before, strict=True)]
    held = [sum(1 for _ in m.scan_iter(match="{gt.*", count=1_000)) for m in masters]
    cluster: Any = connect(cluster_url, 2_000)
    try:  # each master's share of the 64 shards: fixed by the prefix and the masters' slot ranges
        ports = [cluster.get_node_from_key(f"{shard}:x").port for shard in keys.every_shard("gt", 64)]
    finally:
        close(cluster)
    owned = [ports.count(m.connection_pool.connection_kwargs["port"]) / 64 for m in masters]
    assert all(0.20 <= share <= 0.45 for share in owned), owned
    for counted in (held, calls):  # the devices (random keys: the secret is new) follow the shards, within noise
        for n, share in zip(counted, owned, strict=True):
            assert abs(n / sum(counted) - share) <= 0.08, (held, calls, owned)


def test_a_budget_is_given_back_when_the_device_s_master_refuses_the_call(cluster_url: str) -> None:
    """The second call failing half-way on purpose: the device's master is out of memory, the budget's is not."""
    from geotarget.serving.caps import Counter
    from geotarget.store.redis_caps import RedisCapper

    client: Any = connect(cluster_url, 2_000)
    prefix = f"{{oom{time.time_ns() % 10**6}}}"
    capper = RedisCapper(client, prefix, shards=64)
    shared_node = client.get_node_from_key(f"{prefix}:x")
    device = next(
        d for d in (f"d{i}" for i in range(1_000))
        if client.get_node_from_key(keys.registry(keys.device_shard(prefix, d, 64), d)) != shared_node
    )  # fmt: skip
    budget = Counter("budget", "o_1", "d:2026-12-04", 10, 3_600, per_device=False)
    counters = [[Counter("offer", "o_1", "d:2026-12-04", 5, 3_600), budget]]
    impression = [b'{"kind":"impression","n":1}']
    try:
        assert capper.reserve(device, counters, 1, impression, None).served == [0]
        node = client.get_node_from_key(keys.registry(keys.device_shard(prefix, device, 64), device))
        full = redis.Redis(node.host, node.port)
        full.config_set("maxmemory", "1")
        try:
            with pytest.raises(redis.ResponseError, match="maxmemory"):
                capper.reserve(device, counters, 1, impression, None)
        finally:
            full.config_set("maxmemory", "0")
        assert capper.counts("", [budget]) == [1]  # counted by the shared call, given back: no leak
        assert capper.reserve(device, counters, 1, impression, None).served == [0]
        assert capper.counts("", [budget]) == [2]
    finally:
        close(client)
