"""Counts a component keeps of what it did (offers served, transitions fired), readable in place by tests and
handed to a ``sink`` (the runtime passes Prometheus's, ``geotarget.metrics.count``), so the domain counts without
knowing where the figures go."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

Sink = Callable[[str, str, int], None]  # (component, what, how many)


class Tally:
    def __init__(self, component: str, sink: Sink | None = None) -> None:
        self.component = component
        self.sink = sink
        self.counts: Counter[str] = Counter()

    def add(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] += n
            if self.sink is not None:
                self.sink(self.component, what, n)

    def __getitem__(self, what: str) -> int:
        return self.counts[what]
