"""Event consumers scale out: several read one stream through one consumer group, each under its own name, with
no election; each entry is stored by one of them, and what a consumer that died left pending is claimed by
another once it has waited ``claim_idle_ms``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from geotarget.runtime import Runtime
from geotarget.store.stream_consumer import StreamConsumer
from tests.fixtures import impressions

START = datetime(2026, 11, 20, 8, tzinfo=UTC)


def another_consumer(runtime: Runtime, claim_idle_ms: int = 60_000) -> StreamConsumer:
    """A second consumer of the same deployment, as another process or machine would run it."""
    first = runtime.consumer
    return StreamConsumer(
        first.client,
        runtime.settings.key_prefix(),
        runtime.events,
        first.fences_of,
        first.erased,
        batch_size=100,
        claim_idle_ms=claim_idle_ms,
    )


def append_impressions(runtime: Runtime, count: int) -> None:
    runtime.server.sink.append(impressions(count, START, devices=31))


def stored(runtime: Runtime) -> tuple[int, int]:
    """(rows, distinct event ids) in the event store."""
    with runtime.events.connect() as db:
        return db.execute(f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{runtime.events.glob}')")\
            .fetchone()  # fmt: skip


def test_two_consumers_share_the_stream_each_entry_stored_once(runtime):
    append_impressions(runtime, 3_000)
    consumers = [another_consumer(runtime), another_consumer(runtime)]
    settled = [0, 0]
    go = threading.Barrier(2)

    def run(n: int) -> None:
        go.wait()
        while done := consumers[n].poll(block_ms=1):
            settled[n] += done

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(settled) == 3_000 and min(settled) > 0, settled  # both worked, no entry twice
    assert stored(runtime) == (3_000, 3_000)
    assert runtime.consumer.client.xlen(runtime.consumer.stream) == 0


def test_what_a_dead_consumer_left_pending_is_claimed_by_another_after_the_wait(runtime):
    append_impressions(runtime, 250)
    dead = another_consumer(runtime)
    dead._ensure_group()
    taken = dead._read(dead.stream, ">", None)  # read, then killed before writing or acknowledging anything
    assert len(taken) == 100
    alive = another_consumer(runtime, claim_idle_ms=60_000)
    assert alive.drain() == 150  # the dead one's entries are not claimed before they have waited
    assert stored(runtime) == (150, 150)
    patient = another_consumer(runtime, claim_idle_ms=1)
    assert patient.drain() == 100
    assert stored(runtime) == (250, 250)
    assert runtime.consumer.client.xlen(runtime.consumer.stream) == 0


def test_housekeeping_forgets_consumers_gone_for_an_hour_with_nothing_pending(runtime, monkeypatch):
    append_impressions(runtime, 10)
    gone, working = another_consumer(runtime), another_consumer(runtime)
    assert gone.drain() == 10
    append_impressions(runtime, 5)
    working._ensure_group()
    assert len(working._read(working.stream, ">", None)) == 5  # pending: kept, whatever its silence
    monkeypatch.setattr("geotarget.store.stream_consumer.FORGET_IDLE_MS", -1)
    assert runtime.consumer.forget_gone() == 1
    names = {c["name"] for c in runtime.consumer.client.xinfo_consumers(runtime.consumer.stream, "event-store")}
    assert names == {working.name}
