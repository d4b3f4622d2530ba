"""With SHARDS > 1 a device's keys and the streams its requests append to live in its shard, under the shard's
own hash tag; the counters all devices share (daily budgets, goals) stay in the deployment's, reserved first in
a call of their own and given back when the device's call does not serve them. On one Redis here (the same
scripts run on a cluster: tests/test_redis_cluster.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from redis.commands.core import Script

from geotarget.measurement.devices import device_key
from geotarget.serving.caps import Counter, PendingBid
from geotarget.store import keys
from geotarget.store.event_stream import RedisStreamSink
from geotarget.store.redis_caps import RedisCapper
from geotarget.store.redis_devices import RedisDeviceData
from tests.conftest import make_settings
from tests.fixtures import impressions
from tests.test_erasure import recorded, served  # noqa: F401  (served: a fixture)

SHARDS = 64


@pytest.fixture
def settings(tmp_path, redis_url, database_url):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, redis_url, database_url, shards=SHARDS)


def budget(limit: int) -> Counter:
    return Counter("budget", "o_budgeted", "d:2026-12-04", limit, 3_600, per_device=False)


def capped(limit: int, offer: str = "o_budgeted") -> Counter:
    return Counter("offer", offer, "d:2026-12-04", limit, 3_600)


def impression(n: int) -> bytes:
    return b'{"kind":"impression","n":%d}' % n


@pytest.fixture
def capper(redis_url: str) -> tuple[RedisCapper, list[str]]:
    """A capper with 64 shards whose every command is noted (pipelines: once per round trip)."""
    client, sent = recorded(redis_url)
    pipeline = client.pipeline

    def noted_pipeline(*args: Any, **options: Any) -> Any:
        sent.append("PIPELINE")
        return pipeline(*args, **options)

    client.pipeline = noted_pipeline  # type: ignore[method-assign]
    capper = RedisCapper(client, f"s{uuid.uuid4().hex[:8]}", shards=SHARDS)
    for script in vars(capper).values():
        if isinstance(script, Script):
            client.script_load(script.script)  # loaded once per Redis: what is counted is a request's calls
    sent.clear()
    return capper, sent


def spent(capper: RedisCapper, limit: int = 10) -> int:
    return capper.counts("", [budget(limit)])[0]


def test_a_request_without_shared_counters_is_one_round_trip_in_the_device_s_shard(capper):
    capper, sent = capper
    reserved = capper.reserve("d1", [[capped(5)]], 1, [impression(1)], None)
    assert reserved.served == [0] and sent == ["EVALSHA"]
    own = keys.device_shard(capper.prefix, "d1", SHARDS)
    assert own == f"{{{capper.prefix}.{keys.shard_of('d1', SHARDS)}}}"
    assert capper._client.xlen(keys.events_stream(own)) == 1
    assert capper._client.get(keys.counter(own, "d1", "offer", "o_budgeted", "d:2026-12-04")) == "1"


def test_a_budget_is_reserved_first_in_its_own_call_two_round_trips_when_served(capper):
    capper, sent = capper
    assert capper.reserve("d1", [[capped(5), budget(10)]], 1, [impression(1)], None).served == [0]
    assert sent == ["EVALSHA", "EVALSHA"] and spent(capper) == 1


def test_a_budget_the_device_s_caps_refuse_is_given_back(capper):
    capper, sent = capper
    for _ in range(2):
        capper.reserve("d1", [[capped(2), budget(10)]], 1, [impression(1)], None)
    sent.clear()
    refused = capper.reserve("d1", [[capped(2), budget(10)]], 1, [impression(1)], None)
    assert refused.served == [] and refused.blocked == [0]
    assert sent == ["EVALSHA", "EVALSHA", "PIPELINE"] and spent(capper) == 2  # counted, then given back


def test_a_budget_spent_blocks_its_offer_and_the_next_candidate_is_served(capper):
    capper, _ = capper
    candidates = [[capped(5), budget(1)], [capped(5, "o_free")]]
    first = capper.reserve("d1", candidates, 1, [impression(1), impression(2)], None)
    second = capper.reserve("d2", candidates, 1, [impression(1), impression(2)], None)
    assert (first.served, second.served, second.blocked) == ([0], [1], [0])
    assert spent(capper) == 1
    stream = keys.events_stream(keys.device_shard(capper.prefix, "d2", SHARDS))
    logged = [fields["e"] for _, fields in capper._client.xrange(stream)][-2:]
    assert logged == ['{"kind":"cap_blocked","n":1}', '{"kind":"impression","n":2}']


def test_a_budgeted_candidate_beyond_the_answer_is_left_for_the_next_request(capper):
    """The shared call asks only as far as the answer could reach: a later budgeted candidate is not counted
    (nor logged), even when the device's call then refuses the ones before it."""
    capper, _ = capper
    capper.reserve("d1", [[capped(1, "o_first")]], 1, [impression(0)], None)
    candidates = [[capped(1, "o_first")], [capped(5), budget(10)]]
    reserved = capper.reserve("d1", candidates, 1, [impression(1), impression(2)], None)
    assert (reserved.served, reserved.blocked, spent(capper)) == ([], [0], 0)


def test_a_budget_is_given_back_when_the_device_s_call_fails(capper):
    """The device's call failing half-way on purpose (its counter is not a counter): no budget stays spent."""
    capper, _ = capper
    own = keys.device_shard(capper.prefix, "d1", SHARDS)
    capper._client.hset(keys.counter(own, "d1", "offer", "o_budgeted", "d:2026-12-04"), "not", "a counter")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        capper.reserve("d1", [[capped(5), budget(10)]], 1, [impression(1)], None)
    assert spent(capper) == 0


def bids(capper: RedisCapper, device: str, n: int) -> list[PendingBid]:
    return [
        PendingBid(capper.bid_id(device, f"{i:032x}"), b'{"kind":"bid"}', b'{"kind":"cap_blocked"}', b'{"p":')
        for i in range(n)
    ]


@pytest.mark.parametrize(("won", "spent_after"), [(True, 1), (False, 0)])
def test_a_bid_holds_a_budget_slot_that_its_notice_settles(capper, won, spent_after):
    capper, _ = capper
    [pending] = bids(capper, "d1", 1)
    assert pending.bid_id.endswith(f".{keys.shard_of('d1', SHARDS)}")  # the notice finds its shard by it
    held = capper.hold("d1", [[capped(5), budget(1)]], [None], [pending], 60, 3_600)
    assert held.served == [0]
    other = capper.hold("d2", [[capped(5), budget(1)]], [None], bids(capper, "d2", 1), 60, 3_600)
    assert other.blocked == [0]  # the held slot counts: the budget of 1 is taken
    assert capper.settle(pending.bid_id, won, 1.5) == "settled"
    assert spent(capper, 1) == spent_after
    assert capper.settle(pending.bid_id, won, 1.5) == "unknown"  # once
    again = capper.hold("d2", [[capped(5), budget(1)]], [None], bids(capper, "d2", 1), 60, 3_600)
    assert again.served == ([] if won else [0])


def test_a_budget_slot_held_for_a_bid_the_device_s_caps_refuse_is_freed(capper):
    capper, _ = capper
    capper.reserve("d1", [[capped(1)]], 1, [impression(1)], None)
    refused = capper.hold("d1", [[capped(1), budget(1)]], [None], bids(capper, "d1", 1), 60, 3_600)
    assert refused.blocked == [0]
    taken = capper.hold("d2", [[capped(1), budget(1)]], [None], bids(capper, "d2", 1), 60, 3_600)
    assert taken.served == [0]


def test_a_notice_naming_no_shard_is_unknown(capper):
    capper, _ = capper
    assert capper.settle("0" * 32, True, 1.0) == capper.settle("0" * 32 + ".999", True, 1.0) == "unknown"


@pytest.mark.usefixtures("served")
def test_a_served_device_s_keys_events_and_erasure_stay_in_its_shard(runtime):
    """Two devices served a capped offer in a fence a webhook listens to (tests/test_erasure.py), with 64 shards."""
    ana = device_key(runtime.server.device_secret, "ana")
    own = keys.device_shard(runtime.settings.key_prefix(), ana, SHARDS)
    mine = set(runtime.redis.scan_iter(match=f"*{ana}*"))
    assert mine and all(name.startswith(own) for name in mine), mine
    assert {name.split("}:", 2)[2].split(":")[0] for name in mine} == {"cap", "presence", "keys"}
    assert runtime.redis.xlen(keys.events_stream(own)) >= 2  # its ping and its impression
    assert runtime.consumer.drain() >= 4  # every shard's stream read: two devices' pings and impressions
    streams = [keys.events_stream(p) for p in keys.every_shard(runtime.settings.key_prefix(), SHARDS)]
    assert sum(runtime.redis.xlen(s) for s in streams) == 0

    recording, sent = recorded(runtime.redis_url)
    data = RedisDeviceData(recording, runtime.settings.key_prefix(), SHARDS)
    assert data.erase(ana)[0] >= 2
    assert not set(runtime.redis.scan_iter(match=f"*{ana}*")) and not {"SCAN", "KEYS"} & set(sent)
    bob = device_key(runtime.server.device_secret, "bob")
    assert set(runtime.redis.scan_iter(match=f"*{bob}*"))


def test_a_consumer_gathers_every_shard_s_events_into_one_batch(runtime):
    events = impressions(640, datetime(2026, 12, 3, 12, tzinfo=UTC), devices=320)
    RedisStreamSink(runtime.redis, runtime.settings.key_prefix(), SHARDS).append(events)
    streams = [keys.events_stream(p) for p in keys.every_shard(runtime.settings.key_prefix(), SHARDS)]
    assert sum(1 for s in streams if runtime.redis.xlen(s)) > SHARDS // 2  # spread over the shards
    assert runtime.consumer.poll(block_ms=1) == 640  # one pipelined read of every shard, one batch
    assert len(runtime.events.files()) == 1 and sum(runtime.redis.xlen(s) for s in streams) == 0
