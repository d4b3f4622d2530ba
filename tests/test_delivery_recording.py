"""The delivery worker records its attempts a few per round trip, each exactly once, and never holds more than
``parallel`` attempts sent and not yet recorded (what a worker killed at that moment would send again)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from geotarget.triggers.delivering import Deliverer
from geotarget.triggers.dispatch import SubscriptionCache
from geotarget.triggers.webhooks import PendingDelivery, RetryPolicy, Sent, Settled, Subscription

PARALLEL = 4
HOOKS = [Subscription(f"whk_{n}", "app", "key_1", f"https://hook{n}.example/h", ("enter",), "s") for n in range(3)]


class CountingReceiver:
    """A receiver that answers at once, and notes how many attempts were sent and not yet recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.recorded: Counter[str] = Counter()
        self.batches: list[int] = []
        self.most_unrecorded = 0

    def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Sent:
        with self.lock:
            self.sent += 1
            self.most_unrecorded = max(self.most_unrecorded, self.sent - sum(self.recorded.values()))
        time.sleep(0.0005)
        return Sent(True, 200, latency_ms=0.5)

    def settle_many(self, settled: Sequence[Settled]) -> None:
        time.sleep(0.002)  # a round trip to Redis: attempts pile up meanwhile
        with self.lock:
            self.recorded.update(s.pending.delivery_id for s in settled)
            self.batches.append(len(settled))


def pending(n: int) -> PendingDelivery:
    hook = HOOKS[n % len(HOOKS)]
    return PendingDelivery(f"{n}-0", f"dlv_{n}", hook.id, f"evt_{n}", "enter", b"{}", 0, 0, f"device{n % 7}")


def test_attempts_are_recorded_in_batches_each_once_and_never_more_than_parallel_unrecorded():
    receiver = CountingReceiver()
    subscriptions = SubscriptionCache(lambda: HOOKS)
    deliverer = Deliverer(subscriptions, receiver, receiver, RetryPolicy(), parallel=PARALLEL, per_webhook=2)
    try:
        for start in range(0, 600, 100):
            deliverer.deliver([pending(n) for n in range(start, start + 100)])
        assert deliverer.idle(30)
    finally:
        deliverer.close()
    assert receiver.recorded == Counter({f"dlv_{n}": 1 for n in range(600)})
    assert receiver.most_unrecorded <= PARALLEL
    assert len(receiver.batches) < 600 and max(receiver.batches) > 1
