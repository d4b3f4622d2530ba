"""One event history and every query reports, audiences, lift and rotation run over it: the same history stored
two ways (a folder and a bucket, raw and rolled up, DuckDB and Spark) must give the same figures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from geotarget.audiences.model import Dwellers, Regulars, Visitors
from geotarget.measurement.events import Event, ping_event_id
from geotarget.store.event_store import ParquetEventStore
from geotarget.store.report_queries import (
    Scope,
    audience_members,
    heatmap_rows,
    lift_arms,
    reach_figures,
    variant_counts,
)
from tests.fixtures import offer_event

START = datetime(2026, 11, 2, 6, tzinfo=UTC)
END = START + timedelta(days=10)
FENCES = ("fen_cafe", "fen_gym")


def history(seed: int = 7) -> tuple[list[Event], list[list[str]]]:
    """Ten days of 40 devices: runs of pings inside two fences (and some outside), impressions with variants,
    held-out ghosts, clicks on impressions and redemptions; a few events twice (delivery is at-least-once)."""
    rng = random.Random(seed)
    events: list[Event] = []
    fences: list[list[str]] = []
    for n in range(40):
        device = f"dev{n:02d}"
        for day in range(10):
            if rng.random() < 0.5:
                continue
            at = START + timedelta(days=day, minutes=rng.randrange(0, 12 * 60))
            fence = rng.choice(FENCES)
            for step in range(rng.randrange(1, 8)):
                ping_at = at + timedelta(minutes=step * rng.choice((5, 10, 45)))
                lat, lon = 38.7112 + rng.uniform(-0.001, 0.001), -9.1301 + rng.uniform(-0.001, 0.001)
                event = Event(
                    kind="ping", event_id=ping_event_id(device, ping_at), at=ping_at, device_key=device, lat=lat,
                    lon=lon, cell="c",
                )  # fmt: skip
                events.append(event)
                fences.append([fence] if rng.random() < 0.8 else [])
            kind = "ghost" if n % 5 == 0 else "impression"
            shown = offer_event(
                kind=kind, event_id=f"{kind}-{n}-{day}", at=at - timedelta(hours=1), device_key=device,
                offer_id="off_latte", merchant_id="mer_cafe", fence_id=fence, inside=True,
                variant=rng.choice(("a", "b")) if kind == "impression" else "",
            )  # fmt: skip
            events.append(shown)
            fences.append([])
            if kind == "impression" and rng.random() < 0.3:
                events.append(
                    offer_event(
                        kind="click",
                        event_id=f"click-{n}-{day}",
                        at=at,
                        device_key=device,
                        ref=shown.event_id,
                        offer_id="off_latte",
                        merchant_id="mer_cafe",
                        fence_id=fence,
                    )
                )
                fences.append([])
    twice = rng.sample(range(len(events)), 50)
    return events + [events[i] for i in twice], fences + [fences[i] for i in twice]


def figures_of(store: ParquetEventStore) -> dict[str, object]:
    """Every query the reports, audiences, lift and rotation run, over ``store``."""
    merchant = Scope(merchant_id="mer_cafe", visit_fences=FENCES)
    one_fence = Scope(fence_ids=("fen_cafe",), visit_fences=("fen_cafe",))
    zones = dict.fromkeys(FENCES, "Europe/Lisbon")
    now = END + timedelta(days=1)
    rules = [
        Visitors(kind="visitors", geofence_ids=FENCES, min_visits=2, days=30),
        Regulars(kind="regulars", geofence_ids=FENCES, min_days=3, days=30),
        Dwellers(kind="dwellers", geofence_ids=FENCES, min_dwell_s=1_200, days=30),
    ]
    return {
        "merchant by day": reach_figures(store, merchant, START, END, "Europe/Lisbon", "day", 3),
        "fence by week": reach_figures(store, one_fence, START, END, "UTC", "week", 3),
        "fence totals": reach_figures(store, one_fence, START, END, "UTC", "day", 3, whole=START.date()),
        "heatmap": sorted(heatmap_rows(store, (-9.2, 38.6, -9.0, 38.8), START, END, "fen_cafe")),
        "lift": lift_arms(store, "off_latte", FENCES, START, END, 7),
        "audiences": [audience_members(store, rule, zones, now, ()) for rule in rules],
        "variants": variant_counts(store, ["off_latte"], START, END),
    }
