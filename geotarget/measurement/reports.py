"""Reach reports: impressions (and how many were pushed), reach, frequency, visitors, visits, visits after
exposure, cap-blocked serves, clicks, redemptions and click-through rate, poster scans and the redemptions of
codes they handed out, and on exchanges bids, wins and spend.

``assemble`` is pure: it turns long-form figures (each with the number of distinct devices behind it) into one
row per period and applies k-anonymity: a figure computed from at least one but fewer than ``k`` devices is
``null`` and named in ``suppressed``; it is never rounded or approximated. Zero needs no protection.

Figures arrive already built from published units only (see ``store/sql/reach.sql``: slices of one offer and
fence, or one fence, on one UTC day, seen by at least ``k`` devices), which is what stops differencing across
scopes and time. A period whose events all lie in unpublished units shows as suppressed, never as 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

Granularity = Literal["day", "week"]
BUCKETS = ("1", "2", "3", "4", "5+")


@dataclass(frozen=True)
class Figure:
    period: date
    metric: str
    value: float
    devices: int


def periods(first: date, last: date, granularity: Granularity) -> list[date]:
    """Every period start from ``first`` to ``last`` inclusive (weeks start on Monday)."""
    if granularity == "week":
        start, step = first - timedelta(days=first.weekday()), timedelta(days=7)
    else:
        start, step = first, timedelta(days=1)
    out = []
    while start <= last:
        out.append(start)
        start += step
    return out


def assemble(figures: Iterable[Figure], all_periods: list[date], k: int) -> list[dict[str, Any]]:
    """One row per period, suppressed where fewer than ``k`` devices stand behind a figure.

    >>> f = [Figure(date(2026, 11, 23), "impressions", 12, 9), Figure(date(2026, 11, 23), "frequency_1", 9, 9)]
    >>> assemble(f, [date(2026, 11, 23)], k=10)[0]["suppressed"]  # doctest: +NORMALIZE_WHITESPACE
    ['impressions', 'pushes', 'reach', 'avg_frequency', 'frequency', 'clicks', 'redemptions', 'scan_redemptions',
     'wins', 'spend', 'ctr']
    """
    by_period: dict[date, dict[str, Figure]] = {p: {} for p in all_periods}
    for figure in figures:
        by_period.setdefault(figure.period, {})[figure.metric] = figure
    return [_row(period, by_period[period], k) for period in sorted(by_period)]


def _hidden(figure: Figure | None, k: int) -> bool:
    return figure is not None and 0 < figure.devices < k


def _withheld(found: dict[str, Figure], family: str, figure: Figure | None) -> bool:
    """Nothing of the family published in the period (``figure`` is its base figure), but something held back:
    0 would be a lie, so the family's figures are suppressed."""
    held = found.get(f"withheld_{family}")
    return held is not None and held.devices > 0 and (figure is None or figure.value == 0)


def hidden_buckets(counts: dict[str, int], k: int) -> set[str]:
    """The frequency buckets to leave out so that none below ``k`` can be worked out from the row's ``reach``
    (the buckets add up to it): complementary suppression. With one below ``k``, the 5+ bucket hides too when it
    has devices (its impressions are unknown, so they say less about the rest), then the smallest others until
    at least two hide at least ``k`` devices together. ``avg_frequency`` is left out with them (it would add
    the buckets' weighted sum).

    >>> sorted(hidden_buckets({"1": 0, "2": 75, "3": 1, "4": 44, "5+": 20}, k=10))
    ['3', '5+']
    >>> sorted(hidden_buckets({"1": 30, "2": 12, "3": 4, "4": 0, "5+": 0}, k=10))
    ['2', '3']
    """
    hidden = {label for label, count in counts.items() if 0 < count < k}
    if not hidden:
        return hidden
    if counts.get("5+", 0) > 0:
        hidden.add("5+")
    positive = sorted((count, label) for label, count in counts.items() if label not in hidden and count > 0)
    zeros = [label for label in BUCKETS if label not in hidden and counts.get(label, 0) == 0]
    while (len(hidden) < 2 or sum(counts[label] for label in hidden) < k) and (positive or zeros):
        hidden.add(positive.pop(0)[1] if positive else zeros.pop(0))
    return hidden


def _unknown(row: dict[str, Any], family: str) -> bool:
    """Clicks, redemptions, wins and spend are about impressions: hidden with them."""
    return family == "impression" and row["impressions"] is None


def _row(period: date, found: dict[str, Figure], k: int) -> dict[str, Any]:
    suppressed: list[str] = []

    def value(metric: str) -> int:
        figure = found.get(metric)
        return int(figure.value) if figure else 0

    impressions = found.get("impressions")
    reach = impressions.devices if impressions else 0
    row: dict[str, Any] = {"period": period.isoformat()}
    if _hidden(impressions, k) or _withheld(found, "impression", impressions):
        row.update(impressions=None, pushes=None, reach=None, avg_frequency=None, frequency=dict.fromkeys(BUCKETS))
        suppressed += ["impressions", "pushes", "reach", "avg_frequency", "frequency"]
    else:
        counts = {label: value(f"frequency_{n}") for n, label in enumerate(BUCKETS, start=1)}
        hidden = hidden_buckets(counts, k)
        histogram = {label: None if label in hidden else count for label, count in counts.items()}
        if hidden:
            suppressed += ["avg_frequency", "frequency"]
        pushes = found.get("pushes")
        if _hidden(pushes, k):
            suppressed.append("pushes")
        row.update(
            impressions=value("impressions"),
            pushes=None if _hidden(pushes, k) else value("pushes"),
            reach=reach,
            avg_frequency=round(value("linked_impressions") / reach, 3) if reach and not hidden else None,
            frequency=histogram,
        )
    nothing_published = {
        "visit": _withheld(found, "visit", found.get("visitors")),
        "cap_blocked": _withheld(found, "cap_blocked", found.get("cap_blocked")),
        "bid": _withheld(found, "bid", found.get("bids")),
        "scan": _withheld(found, "scan", found.get("scans")),
    }
    for metric, family in (
        ("visitors", "visit"),
        ("visits", "visit"),
        ("visits_after_exposure", "visit"),
        ("cap_blocked", "cap_blocked"),
        ("clicks", "impression"),
        ("redemptions", "impression"),
        ("scans", "scan"),
        ("scan_redemptions", "impression"),
        ("bids", "bid"),
        ("wins", "impression"),
        ("spend", "impression"),
    ):
        if _hidden(found.get(metric), k) or nothing_published.get(family, False) or _unknown(row, family):
            row[metric] = None
            suppressed.append(metric)
        else:
            row[metric] = value(metric)
    if row["spend"] is not None:  # in the bid currency, to the cent
        figure = found.get("spend")
        row["spend"] = round(figure.value, 2) if figure else 0.0
    clicks, impressions_shown = row["clicks"], row["impressions"]
    row["ctr"] = round(clicks / impressions_shown, 4) if clicks is not None and impressions_shown else None
    if clicks is None or impressions_shown is None:
        suppressed.append("ctr")
    row["suppressed"] = suppressed
    return row
