"""Runs the report and audience SQL (``sql/*.sql``, loaded once) against the Parquet event store, on its engine
(DuckDB or Spark, ``store/report_engines.py``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from geotarget.audiences.model import Lapsed, Rule
from geotarget.measurement.reports import Figure
from geotarget.store.event_store import ParquetEventStore

_REACH = (Path(__file__).parent / "sql" / "reach.sql").read_text()
_HEATMAP = (Path(__file__).parent / "sql" / "heatmap.sql").read_text()
_LIFT = (Path(__file__).parent / "sql" / "lift.sql").read_text()


@dataclass(frozen=True)
class Scope:
    """Which impressions count and which fences' visitors count."""

    offer_ids: tuple[str, ...] = ()
    fence_ids: tuple[str, ...] = ()
    merchant_id: str = ""
    visit_fences: tuple[str, ...] = ()


def reach_figures(
    store: ParquetEventStore,
    scope: Scope,
    from_ts: datetime,
    to_ts: datetime,
    timezone: str,
    unit: str,
    k: int,
    whole: date | None = None,
) -> list[Figure]:
    """Figures per period; with ``whole``, one period for the window (its first day), for totals."""
    if not store.has_data():
        return []
    params: dict[str, Any] = {
        "from_ts": from_ts,
        "to_ts": to_ts,
        "tz": timezone,
        "unit": unit,
        "offer_ids": list(scope.offer_ids),
        "fence_ids": list(scope.fence_ids),
        "merchant_id": scope.merchant_id,
        "visit_fences": list(scope.visit_fences),
        "k": k,
        "whole": whole,
    }
    rows = store.query(_REACH, params, (from_ts - timedelta(days=8)).date(), (to_ts + timedelta(days=1)).date())
    return [Figure(period, metric, float(value), int(devices)) for period, metric, value, devices in rows]


def heatmap_rows(
    store: ParquetEventStore,
    bounds: tuple[float, float, float, float],
    from_ts: datetime,
    to_ts: datetime,
    fence_id: str,
) -> list[tuple[float, float, str, bool, bool, date]]:
    """(lat, lon, device_key, inside the fence, inside the window, UTC day) for every distinct ping of a linked
    device in the box, on the UTC days the window touches."""
    if not store.has_data():
        return []
    west, south, east, north = bounds
    params: dict[str, Any] = {
        "from_ts": from_ts,
        "to_ts": to_ts,
        "west": west,
        "south": south,
        "east": east,
        "north": north,
        "fence_id": fence_id,
    }
    rows = store.query(_HEATMAP, params, (from_ts - timedelta(days=1)).date(), (to_ts + timedelta(days=1)).date())
    return [(float(lat), float(lon), str(d), bool(i), bool(w), day) for lat, lon, d, i, w, day in rows]


def lift_arms(
    store: ParquetEventStore,
    offer_id: str,
    fence_ids: Sequence[str],
    from_ts: datetime,
    to_ts: datetime,
    window_days: int,
) -> dict[str, tuple[int, int]]:
    """arm ("exposed", "control") -> (devices, visitors within the window after their first exposure)."""
    if not store.has_data():
        return {}
    params = {"offer_id": offer_id, "fences": list(fence_ids), "from_ts": from_ts}
    params |= {"to_ts": to_ts, "window_days": window_days}
    rows = store.query(_LIFT, params, from_ts.date(), (to_ts + timedelta(days=window_days)).date())
    return {arm: (int(devices), int(visitors)) for arm, devices, visitors in rows}


_AUDIENCE_MEMBERS = (Path(__file__).parent / "sql" / "audience_members.sql").read_text()


def audience_members(
    store: ParquetEventStore, rule: Rule, zones: Mapping[str, str], now: datetime, erased: Collection[str]
) -> list[str]:
    """Device keys whose visits to the fences of ``zones`` (fence id -> time zone) fit ``rule`` at ``now``."""
    if not store.has_data() or not zones:
        return []
    longest = rule.seen_within_days if isinstance(rule, Lapsed) else rule.days
    given = rule.model_dump()  # the rule's own figures; the SQL reads every one, so the others are 0
    names = {"days": "days", "min_visits": "min_visits", "min_days": "min_days", "min_dwell_s": "min_dwell_s"}
    names |= {"seen_days": "seen_within_days", "not_days": "not_within_days"}
    figures = {param: given.get(field, 0) for param, field in names.items()}
    since = now - timedelta(days=longest + 1)
    zoned = [{"fence": fence, "zone": zone} for fence, zone in zones.items()]
    params: dict[str, Any] = {"zoned": zoned, "now": now, "since": since}
    params |= {"erased": sorted(erased), "kind": rule.kind} | figures
    rows = store.query(_AUDIENCE_MEMBERS, params, since.date(), now.date(), edges_cut=True)
    return [str(device) for (device,) in rows]


_VARIANTS = (Path(__file__).parent / "sql" / "variants.sql").read_text()


@dataclass(frozen=True)
class VariantCount:
    offer_id: str
    variant: str
    impressions: int
    devices: int
    clicks: int


def variant_counts(
    store: ParquetEventStore, offer_ids: Sequence[str], from_ts: datetime, to_ts: datetime
) -> list[VariantCount]:
    """Impressions, devices and clicks per (offer, variant) in the window (``sql/variants.sql``)."""
    if not store.has_data() or not offer_ids:
        return []
    params = {"offer_ids": list(offer_ids), "from_ts": from_ts, "to_ts": to_ts}
    rows = store.query(_VARIANTS, params, from_ts.date())
    return [VariantCount(str(o), str(v), int(i), int(d), int(c)) for o, v, i, d, c in rows]
