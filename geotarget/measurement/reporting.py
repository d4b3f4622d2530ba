"""Reports as merchants and ad ops ask for them: scope resolution (a merchant only ever sees its own offers and
fences), the report window on the scope's calendar, k-suppression, and CSV/heatmap shaping."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd

from geofences import cells
from geofences.shapes import degrees_around
from geotarget.catalog.model import Fence, Merchant, Offer
from geotarget.catalog.shapes import shape_of
from geotarget.catalog.timezones import check_timezone
from geotarget.errors import InvalidInput, NotFound
from geotarget.measurement.lift import Arm, in_words, lift
from geotarget.measurement.reports import BUCKETS, Granularity, assemble, periods
from geotarget.store.event_store import ParquetEventStore
from geotarget.store.report_queries import (
    Scope,
    VariantCount,
    heatmap_rows,
    lift_arms,
    reach_figures,
    variant_counts,
)
from geotarget.store.repository import Owner, Repository

MAX_DAYS = 400
DEFAULT_DAYS = 30


def report_days(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """Every report's window: ``to`` defaults to today, ``from`` to 29 days before ``to`` (30 days in all).

    >>> report_days(None, None, date(2026, 11, 24))
    (datetime.date(2026, 10, 26), datetime.date(2026, 11, 24))
    """
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise InvalidInput("'to' is before 'from'", "to")
    if (last - first).days > MAX_DAYS:
        raise InvalidInput(f"at most {MAX_DAYS} days per report", "from")
    return first, last


_Seen = TypeVar("_Seen", Fence, Offer, Merchant)
HEATMAP_MARGIN_M = 500.0


@dataclass(frozen=True)
class ReportRequest:
    offer_id: str | None = None
    geofence_id: str | None = None
    merchant_id: str | None = None
    first: date | None = None
    last: date | None = None
    granularity: Granularity = "day"
    timezone: str | None = None


@dataclass(frozen=True)
class Scopes:
    """What a viewer may report on."""

    merchants: list[Merchant]
    fences: list[Fence]
    offers: list[Offer]


def _variant_figures(counted: VariantCount | None, hidden: bool) -> dict[str, Any]:
    shown, reach, clicks = (0, 0, 0) if counted is None else (counted.impressions, counted.devices, counted.clicks)
    return {
        "impressions": None if hidden else shown,
        "reach": None if hidden else reach,
        "clicks": None if hidden else clicks,
        "ctr": None if hidden or not shown else round(clicks / shown, 4),
    }


def _on_fences(offer: Offer, fences: list[Fence]) -> Offer:
    if not (offer.geofence_tags or offer.all_geofences):
        return offer
    on = tuple(f.id for f in fences if f.merchant_id == offer.merchant_id and offer.names_fence(f))
    return offer.model_copy(update={"geofence_ids": on})


class ReportService:
    def __init__(self, repository: Repository, store: ParquetEventStore, k: int) -> None:
        self.repository = repository
        self.store = store
        self.k = k

    def reach(self, request: ReportRequest, viewer: Owner, today: date) -> dict[str, Any]:
        scope, zone, label = self._scope(request, viewer)
        zone = check_timezone(request.timezone, "tz") if request.timezone else zone
        first, last = report_days(request.first, request.last, today)
        start, end = _local_window(first, last, zone)
        unit = request.granularity
        figures = reach_figures(self.store, scope, start, end, zone, unit, self.k)
        rows = assemble(figures, periods(first, last, unit), self.k)
        whole = reach_figures(self.store, scope, start, end, zone, unit, self.k, whole=first)
        totals = assemble(whole, [first], self.k)[0] | {"period": f"{first.isoformat()}/{last.isoformat()}"}
        variants = self._variants(scope, start, end) if request.offer_id else None
        return {
            "scope": label,
            "timezone": zone,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "granularity": unit,
            "k": self.k,
            "rows": rows,
            "totals": totals,
            "variants": variants,
        }

    def _variants(self, scope: Scope, start: datetime, end: datetime) -> list[dict[str, Any]] | None:
        """An offer's creative variants over the window. One under k devices hides them all: the others and the
        totals would give it away."""
        counted = variant_counts(self.store, scope.offer_ids, start, end)
        if not counted:
            return None
        hidden = any(0 < c.devices < self.k for c in counted)
        return [{"variant_id": c.variant, **_variant_figures(c, hidden)} for c in counted]

    def variants(
        self, offer_id: str, viewer: Owner, at: datetime, days: int, shares: Callable[[Offer], Sequence[float]]
    ) -> dict[str, Any]:
        """An offer's variants as they stand: the share of new impressions each gets now (``shares``: serving's
        rotation) beside its impressions, clicks and click rate over the last ``days`` (k-suppressed as a whole)."""
        offer = self._visible(self.repository.offer(viewer, offer_id), "offer", offer_id)
        start = at - timedelta(days=days)
        counted = {c.variant: c for c in variant_counts(self.store, [offer.id], start, at)}
        hidden = any(0 < c.devices < self.k for c in counted.values())
        weights = list(shares(offer)) if offer.variants else []
        total = sum(weights) or 1.0
        rows = [
            {
                "variant_id": v.id,
                "title": v.title or offer.title,
                "share": round(w / total, 4),
                **_variant_figures(counted.get(v.id), hidden),
            }
            for v, w in zip(offer.variants, weights, strict=True)
        ]
        window = {"from": start.isoformat(), "to": at.isoformat()}
        return {"offer_id": offer.id, "rotation": offer.rotation, "k": self.k, **window, "variants": rows}

    def lift(
        self, offer_id: str, viewer: Owner, first: date | None, last: date | None, window_days: int, today: date
    ) -> dict[str, Any]:
        """Exposed against held-out devices of one offer (docs/reports.md); both arms k-suppressed."""
        offer = self._visible(self.repository.offer(viewer, offer_id), "offer", offer_id)
        first, last = report_days(first, last, today)
        # visits to the offer's own served fences only: a fence drawn later (an audience fence at someone's home)
        # must not move the figures, or two reports would tell one device's visits apart
        fences = [f.id for f in self._fences_of(offer) if not f.audience_only]
        start, end = _local_window(first, last, offer.timezone)
        arms = lift_arms(self.store, offer.id, fences, start, end, window_days)
        exposed, control = (Arm(*arms.get(arm, (0, 0))) for arm in ("exposed", "control"))
        counts = (exposed.devices, exposed.visitors, control.devices, control.visitors)
        suppressed = any(0 < n < self.k for n in counts)
        result = lift(exposed, control)
        shown = not suppressed

        def arm(a: Arm) -> dict[str, Any]:
            return {
                "devices": a.devices if shown else None,
                "visitors": a.visitors if shown else None,
                "rate": round(a.rate, 4) if shown and a.rate is not None else None,
            }

        return {
            "offer_id": offer.id,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "window_days": window_days,
            "holdout_pct": offer.holdout_pct,
            "k": self.k,
            "exposed": arm(exposed),
            "control": arm(control),
            "lift_abs": _rounded(result.lift_abs) if shown else None,
            "lift_rel": _rounded(result.lift_rel) if shown else None,
            "ci95": [_rounded(v) for v in result.ci95] if shown and result.ci95 else None,
            "p_value": _rounded(result.p_value, 6) if shown else None,
            "in_words": in_words(result, offer.holdout_pct)
            if shown or not offer.holdout_pct
            else f"suppressed: an arm has fewer than {self.k} devices",
            "suppressed": suppressed,
        }

    def scopes(self, viewer: Owner) -> Scopes:
        """Every merchant, fence and offer for ad ops; its own for a merchant."""
        merchants = self.repository.merchants(viewer)
        fences = self.repository.fences(viewer)
        offers = self.repository.offers(viewer)
        # an offer by tag or over all fences is listed with the fences it is on now (the page's heatmap choices)
        return Scopes(merchants, fences, [_on_fences(offer, fences) for offer in offers])

    def heatmap(
        self, fence_id: str, viewer: Owner, first: date | None, last: date | None, res: int, today: date
    ) -> dict[str, Any]:
        first, last = report_days(first, last, today)
        row = self._visible(self.repository.fence(viewer, fence_id), "geofence", fence_id)
        west, south, east, north = shape_of(row).bounds
        pad_lat, pad_lon = degrees_around(max(abs(south), abs(north)), HEATMAP_MARGIN_M)
        start, end = _local_window(first, last, row.timezone)
        found = heatmap_rows(
            self.store, (west - pad_lon, south - pad_lat, east + pad_lon, north + pad_lat), start, end, fence_id
        )
        features: list[dict[str, Any]] = []
        if found:
            frame = pd.DataFrame(found, columns=["lat", "lon", "device_key", "inside", "in_window", "unit_day"])
            frame["parent"] = cells.latlngs_to_cells(frame["lat"].to_numpy(), frame["lon"].to_numpy(), res)
            # only published units (a cell on a UTC day with at least k devices) count: see docs/privacy.md;
            # a cell with pings in the window but none published is shown suppressed
            unit_devices = frame.groupby(["parent", "unit_day"])["device_key"].transform("nunique")
            frame = frame[frame["in_window"]].assign(published=unit_devices >= self.k)
            seen = frame["parent"].unique()
            frame = frame[frame["published"]]
            grouped = frame.groupby("parent").agg(pings=("device_key", "size"), devices=("device_key", "nunique"))
            grouped = grouped.reindex(seen, fill_value=0)
            visitors = frame[frame["inside"]].groupby("parent")["device_key"].nunique()
            for parent, figures in grouped.iterrows():
                cell = cells.Cell(int(parent))
                devices = int(figures["devices"])
                hidden = devices < self.k
                features.append(
                    {
                        "type": "Feature",
                        "id": cells.cell_to_str(cell),
                        "geometry": cells.cell_to_geojson(cell),
                        "properties": {
                            "cell": cells.cell_to_str(cell),
                            "pings": None if hidden else int(figures["pings"]),
                            "devices": None if hidden else devices,
                            "visitors": None if hidden else int(visitors.get(parent, 0)),
                            "suppressed": hidden,
                        },
                    }
                )
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {
                "geofence_id": fence_id,
                "fence": {"name": row.name, "geometry": row.geometry, "radius_m": row.radius_m},
                "res": res,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "k": self.k,
            },
        }

    def _fences_of(self, offer: Offer) -> list[Fence]:
        """The fences the offer is on now: by id, by tag, or all of its merchant's."""
        if not (offer.geofence_tags or offer.all_geofences):
            return self.repository.fences(offer.merchant_id, offer.geofence_ids)
        return [f for f in self.repository.fences(offer.merchant_id) if offer.names_fence(f)]

    def _scope(self, request: ReportRequest, viewer: Owner) -> tuple[Scope, str, dict[str, str]]:
        chosen = [n for n in ("offer_id", "geofence_id", "merchant_id") if getattr(request, n)]
        if isinstance(viewer, str) and not chosen:
            request = replace(request, merchant_id=viewer)
            chosen = ["merchant_id"]
        if len(chosen) != 1:
            raise InvalidInput("give exactly one of offer_id, geofence_id or merchant_id", "offer_id")
        if request.offer_id:
            offer = self._visible(self.repository.offer(viewer, request.offer_id), "offer", request.offer_id)
            scope = Scope(offer_ids=(offer.id,), visit_fences=tuple(f.id for f in self._fences_of(offer)))
            return scope, offer.timezone, {"offer_id": offer.id}
        if request.geofence_id:
            fence = self._visible(self.repository.fence(viewer, request.geofence_id), "geofence", request.geofence_id)
            return Scope(fence_ids=(fence.id,), visit_fences=(fence.id,)), fence.timezone, {"geofence_id": fence.id}
        merchant_id = request.merchant_id or ""
        merchant = self._visible(self.repository.merchant(viewer, merchant_id), "merchant", merchant_id)
        fence_ids = tuple(f.id for f in self.repository.fences(merchant.id))
        scope = Scope(merchant_id=merchant.id, visit_fences=fence_ids)
        return scope, merchant.timezone or "UTC", {"merchant_id": merchant.id}

    @staticmethod
    def _visible(found: _Seen | None, noun: str, wanted: str) -> _Seen:
        """The one ownership check: the repository returned nothing the viewer may not see."""
        if found is None:
            raise NotFound(f"no {noun} {wanted!r}", f"{noun}_id")
        return found


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _local_window(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def rows_to_csv(rows: Sequence[dict[str, Any]], variants: Sequence[dict[str, Any]] | None = None) -> str:
    """Flat CSV: one column per figure and per frequency bucket; suppressed figures are empty cells. An offer's
    variants follow as rows whose period reads ``variant <id>`` (over the whole window; only impressions,
    reach, clicks and ctr filled)."""
    out = io.StringIO()
    columns = [
        "period",
        "impressions",
        "pushes",
        "reach",
        "avg_frequency",
        *(f"frequency_{b}" for b in BUCKETS),
        "visitors",
        "visits",
        "visits_after_exposure",
        "cap_blocked",
        "clicks",
        "redemptions",
        "scans",
        "scan_redemptions",
        "ctr",
        "bids",
        "wins",
        "spend",
        "suppressed",
    ]
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        frequency = row.get("frequency") or {}
        writer.writerow(
            [
                row["period"],
                _cell(row["impressions"]),
                _cell(row["pushes"]),
                _cell(row["reach"]),
                _cell(row["avg_frequency"]),
                *(_cell(frequency.get(b)) for b in BUCKETS),
                _cell(row["visitors"]),
                _cell(row["visits"]),
                _cell(row["visits_after_exposure"]),
                _cell(row["cap_blocked"]),
                _cell(row["clicks"]),
                _cell(row["redemptions"]),
                _cell(row["scans"]),
                _cell(row["scan_redemptions"]),
                _cell(row["ctr"]),
                _cell(row["bids"]),
                _cell(row["wins"]),
                _cell(row["spend"]),
                " ".join(row["suppressed"]),
            ]
        )
    for variant in variants or ():
        figures = {name: variant[name] for name in ("impressions", "reach", "clicks", "ctr")}
        hidden = "impressions reach clicks ctr" if variant["reach"] is None else ""
        writer.writerow([f"variant {variant['variant_id']}", *(_cell(figures.get(c)) for c in columns[1:-1]), hidden])
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
