"""Complementary suppression: a frequency bucket held back for having fewer than k devices can never be worked
out from the row's reach, which the buckets add up to."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from geotarget.measurement.reports import BUCKETS, Figure, assemble, hidden_buckets

K = 10


def values_left_open(counts: dict[str, int], hidden: set[str], bucket: str) -> set[int]:
    """The values ``bucket`` could have, given the reach and every bucket shown: any split of what the shown
    ones leave over among the hidden ones (each hidden bucket takes 0..rest when another can take the
    remainder)."""
    rest = sum(counts.values()) - sum(c for b, c in counts.items() if b not in hidden)
    others = len(hidden) - 1
    return {v for v in range(rest + 1) if others > 0 or v == rest}


histograms = st.fixed_dictionaries({b: st.integers(0, 30) for b in BUCKETS}).filter(lambda h: sum(h.values()) >= K)


@given(histograms)
@settings(max_examples=300, deadline=None)
def test_no_bucket_below_k_can_be_worked_out_from_the_reach(counts):
    hidden = hidden_buckets(counts, K)
    small = {b for b, c in counts.items() if 0 < c < K}
    assert small <= hidden
    assert hidden == set() if not small else sum(counts[b] for b in hidden) >= K
    for bucket in small:
        assert len(values_left_open(counts, hidden, bucket)) >= K, (counts, hidden)


def test_the_row_a_new_user_worked_the_hidden_bucket_out_of_now_hides_two_and_the_average():
    day = date(2026, 11, 20)
    histogram = {"1": 0, "2": 75, "3": 1, "4": 44, "5+": 20}
    figures = [Figure(day, "impressions", 550, 140), Figure(day, "linked_impressions", 550, 140)]
    figures += [Figure(day, f"frequency_{n}", c, c) for n, c in enumerate(histogram.values(), start=1)]
    [row] = assemble(figures, [day], K)
    assert row["reach"] == 140
    assert row["frequency"] == {"1": 0, "2": 75, "3": None, "4": 44, "5+": None}
    assert row["avg_frequency"] is None
    assert {"frequency", "avg_frequency"} <= set(row["suppressed"])
