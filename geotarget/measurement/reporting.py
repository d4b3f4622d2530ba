"""Reports as merchants and ad ops ask for them: scope resolution (a merchant only ever sees its own offers and
fences), the report window on the scope's calendar, k-suppression, and CSV/heatmap shaping."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from geofences import cells
from geotarget.catalog.shapes import shape_of
from geotarget.catalog.timezones import check_timezone
from geotarget.errors import InvalidInput, NotFound
from geotarget.measurement.reports import BUCKETS, Granularity, assemble, periods
from geotarget.store import repository
from geotarget.store.event_store import ParquetEventStore
from geotarget.store.report_queries import Scope, heatmap_rows, reach_figures

MAX_DAYS = 400
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


class ReportService:
    def __init__(self, factory: sessionmaker[Session], store: ParquetEventStore, k: int) -> None:
        self.factory = factory
        self.store = store
        self.k = k

    def reach(self, request: ReportRequest, viewer_merchant: str | None, today: date) -> dict[str, Any]:
        """``viewer_merchant`` is the caller's merchant (None for ad ops, who see everything)."""
        scope, zone, label = self._scope(request, viewer_merchant)
        zone = check_timezone(request.timezone, "tz") if request.timezone else zone
        last = request.last or today
        first = request.first or last - timedelta(days=29)
        if last < first:
            raise InvalidInput("'to' is before 'from'", "to")
        if (last - first).days > MAX_DAYS:
            raise InvalidInput(f"at most {MAX_DAYS} days per report", "from")
        start, end = _local_window(first, last, zone)
        unit = request.granularity
        figures = reach_figures(self.store, scope, start, end, zone, unit, self.k)
        rows = assemble(figures, periods(first, last, unit), self.k)
        return {
            "scope": label,
            "timezone": zone,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "granularity": unit,
            "k": self.k,
            "rows": rows,
        }

    def scopes(self, viewer_merchant: str | None) -> dict[str, list[dict[str, Any]]]:
        """What the viewer may report on: every merchant, fence and offer for ad ops; its own for a merchant."""
        with self.factory() as session:
            if viewer_merchant is None:
                merchants = list(repository.all_merchants(session))
                fences, offers = repository.all_fences(session), repository.all_offers(session)
            else:
                merchant = repository.get_merchant(session, viewer_merchant)
                merchants = [merchant] if merchant else []
                fences = repository.list_fences(session, viewer_merchant)
                offers = repository.list_offers(session, viewer_merchant)
            return {
                "merchants": [{"id": m.id, "name": m.name, "timezone": m.timezone} for m in merchants],
                "geofences": [
                    {"id": f.id, "name": f.name, "merchant_id": f.merchant_id, "timezone": f.timezone} for f in fences
                ],
                "offers": [
                    {
                        "id": o.id,
                        "title": o.title,
                        "merchant_id": o.merchant_id,
                        "geofence_ids": list(o.geofence_ids),
                        "status": o.status,
                    }
                    for o in offers
                ],
            }

    def heatmap(self, fence_id: str, viewer_merchant: str | None, first: date, last: date, res: int) -> dict[str, Any]:
        with self.factory() as session:
            fence = repository.fences_by_ids(session, [fence_id])
            if not fence or (viewer_merchant is not None and fence[0].merchant_id != viewer_merchant):
                raise NotFound(f"no geofence {fence_id!r}", "geofence_id")
            row = fence[0]

        west, south, east, north = shape_of(row).bounds
        pad_lat = HEATMAP_MARGIN_M / 111_195
        pad_lon = pad_lat / max(np.cos(np.radians(max(abs(south), abs(north)))), 0.01)
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
                ring = [p.as_geojson() for p in cells.cell_to_ring(cell)]
                features.append(
                    {
                        "type": "Feature",
                        "id": cells.cell_to_str(cell),
                        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
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

    def _scope(self, request: ReportRequest, viewer: str | None) -> tuple[Scope, str, dict[str, str]]:
        chosen = [n for n in ("offer_id", "geofence_id", "merchant_id") if getattr(request, n)]
        if viewer is not None and not chosen:
            request = ReportRequest(
                merchant_id=viewer, **{k: getattr(request, k) for k in ("first", "last", "granularity", "timezone")}
            )
            chosen = ["merchant_id"]
        if len(chosen) != 1:
            raise InvalidInput("give exactly one of offer_id, geofence_id or merchant_id", "offer_id")
        with self.factory() as session:
            if request.offer_id:
                offers = repository.offers_by_ids(session, [request.offer_id])
                if not offers or (viewer is not None and offers[0].merchant_id != viewer):
                    raise NotFound(f"no offer {request.offer_id!r}", "offer_id")
                offer = offers[0]
                return (
                    Scope(offer_ids=(offer.id,), visit_fences=tuple(offer.geofence_ids)),
                    offer.timezone,
                    {"offer_id": offer.id},
                )
            if request.geofence_id:
                fences = repository.fences_by_ids(session, [request.geofence_id])
                if not fences or (viewer is not None and fences[0].merchant_id != viewer):
                    raise NotFound(f"no geofence {request.geofence_id!r}", "geofence_id")
                fence = fences[0]
                return (
                    Scope(fence_ids=(fence.id,), visit_fences=(fence.id,)),
                    fence.timezone,
                    {"geofence_id": fence.id},
                )
            merchant_id = request.merchant_id or ""
            merchant = repository.get_merchant(session, merchant_id)
            if merchant is None or (viewer is not None and merchant_id != viewer):
                raise NotFound(f"no merchant {merchant_id!r}", "merchant_id")
            fence_ids = tuple(f.id for f in repository.list_fences(session, merchant_id))
            return (
                Scope(merchant_id=merchant_id, visit_fences=fence_ids),
                merchant.timezone or "UTC",
                {"merchant_id": merchant_id},
            )


def _local_window(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Flat CSV: one column per figure and per frequency bucket; suppressed figures are empty cells."""
    out = io.StringIO()
    columns = [
        "period",
        "impressions",
        "reach",
        "avg_frequency",
        *(f"frequency_{b}" for b in BUCKETS),
        "visitors",
        "visits",
        "visits_after_exposure",
        "cap_blocked",
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
                _cell(row["reach"]),
                _cell(row["avg_frequency"]),
                *(_cell(frequency.get(b)) for b in BUCKETS),
                _cell(row["visitors"]),
                _cell(row["visits"]),
                _cell(row["visits_after_exposure"]),
                _cell(row["cap_blocked"]),
                " ".join(row["suppressed"]),
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
