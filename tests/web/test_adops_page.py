"""/adops in a real browser: after real /v1/nearby traffic went through the consumer into the event store, ad ops
see the charts, the heatmap, the table, the CSV and suppressed figures."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.browsing import ARTIFACTS, LISBON, K, admin, call, log_in

pytestmark = pytest.mark.slow


def _serve_impressions(site: str, app_key: str, devices: list[str], times: int) -> None:
    lat, lon = LISBON
    for _ in range(times):
        for device in devices:
            answer = call(site, app_key, "GET", "/v1/nearby", params={"lat": lat, "lon": lon, "device_id": device})
            assert answer["degraded"] is None and answer["offers"], answer


def _wait_for_store(site: str, key: str, offer_id: str, stored: Callable[[list[dict[str, Any]]], bool]) -> None:
    """The consumer writes in batches: wait until the report shows what was served."""
    deadline = time.monotonic() + 30
    while not stored(rows := call(site, key, "GET", "/v1/reports/reach", params={"offer_id": offer_id})["rows"]):
        assert time.monotonic() < deadline, f"the consumer has not stored the impressions: {rows[-1]}"
        time.sleep(0.3)


TABLE_FIT = """() => {
  const wrap = document.querySelector('.table-wrap'), box = wrap.getBoundingClientRect();
  const first = () => document.querySelector('#report-table tbody tr td').getBoundingClientRect().left;
  const before = first();
  wrap.scrollLeft = wrap.scrollWidth;  // to the last column
  const spend = [...document.querySelectorAll('#report-table th')].find((th) => th.textContent === 'spend');
  const seen = spend.getBoundingClientRect();
  const fit = {page: document.documentElement.scrollWidth, viewport: window.innerWidth, right: box.right,
               pinned: Math.abs(first() - before) < 1, spendSeen: seen.right <= box.right + 1 && seen.left >= box.left};
  wrap.scrollLeft = 0;
  return fit;
}"""


def show_report(page: Any, scope: str) -> None:
    page.select_option("#scope", scope)  # no click on Show: choosing the scope loads its report
    page.wait_for_selector(f"#report-table[data-scope='{scope}'] tbody tr")


def test_adops_sees_charts_heatmap_and_table_from_the_event_store(site: str, page: Any) -> None:
    merchant_key = admin(site, "/v1/merchants", {"name": "Reach Café", "timezone": "Europe/Lisbon"})["api_key"]
    adops_key = admin(site, "/v1/apps", {"name": "ad ops", "role": "adops"})["api_key"]
    app_key = admin(site, "/v1/apps", {"name": "reach app"})["api_key"]
    lat, lon = LISBON
    fence = call(
        site,
        merchant_key,
        "POST",
        "/v1/geofences",
        json={
            "type": "Feature",
            "properties": {"name": "Reach Café", "radius_m": 60},
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
        },
    )
    popular = call(site, merchant_key, "POST", "/v1/offers", json={"title": "Popular", "geofence_ids": [fence["id"]]})
    _serve_impressions(site, app_key, [f"phone-{i}" for i in range(5)], times=2)
    call(site, merchant_key, "PATCH", f"/v1/offers/{popular['id']}", json={"status": "paused"})
    rare = call(site, merchant_key, "POST", "/v1/offers", json={"title": "Rare", "geofence_ids": [fence["id"]]})
    _serve_impressions(site, app_key, ["phone-lonely"], times=1)
    _wait_for_store(site, adops_key, popular["id"], lambda rows: sum(r["impressions"] or 0 for r in rows) == 10)
    _wait_for_store(site, adops_key, rare["id"], lambda rows: any(r["impressions"] is None for r in rows))

    log_in(page, f"{site}/adops", adops_key)
    show_report(page, f"offer_id={popular['id']}")
    page.wait_for_function("geotarget.charts && geotarget.charts['reach-chart']")
    impressions = page.evaluate(
        "geotarget.charts['reach-chart'].data.datasets[0].data.reduce((a, b) => a + (b || 0), 0)"
    )
    reach = page.evaluate("Math.max(...geotarget.charts['reach-chart'].data.datasets[1].data.map(v => v || 0))")
    histogram = page.evaluate("geotarget.charts['frequency-chart'].data.datasets[0].data")
    assert (impressions, reach) == (10, 5)
    assert histogram == [0, 5, 0, 0, 0]  # five devices saw it twice
    labels = page.evaluate("geotarget.charts['frequency-chart'].data.labels")
    assert labels == ["once", "twice", "3 times", "4 times", "5 times or more"]
    assert "5 devices reached" in " ".join(page.inner_text("#totals").split()).replace("\n", " ")
    assert page.locator("#report-table tbody tr").count() == 30  # the default: the last 30 days
    served = call(site, adops_key, "GET", "/v1/reports/reach", params={"offer_id": popular["id"]})["rows"]
    first_day = next(r["period"] for r in served if r["impressions"])
    assert page.evaluate("geotarget.charts['reach-chart'].data.labels")[0] == first_day  # no empty days before
    assert "before" in page.inner_text("#chart-note")  # and it says so
    fit = page.evaluate(TABLE_FIT)  # the table scrolls inside its card, its period column pinned
    assert fit["page"] <= fit["viewport"] and fit["right"] <= fit["viewport"], fit
    assert fit["pinned"] and fit["spendSeen"], fit
    page.wait_for_selector(f"#map[data-fence='{fence['id']}']")  # the heatmap of this report's fence is drawn
    page.wait_for_selector("path.heat-cell")

    assert page.locator("path.heat-fence").count() == 1  # the fence's outline over its cells

    assert "cells" in page.inner_text("#heat-legend")
    page.screenshot(path=str(ARTIFACTS / "adops-report.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sum(int(r["impressions"]) for r in rows if r["impressions"]) == 10
    assert max(int(r["reach"] or 0) for r in rows) == 5

    show_report(page, f"offer_id={rare['id']}")
    assert page.locator("#report-table td.suppressed").count() > 0
    assert f"fewer than {K} devices" in page.inner_text("#suppression-note")
    page.screenshot(path=str(ARTIFACTS / "adops-suppressed.png"), full_page=True)

    held = call(
        site,
        merchant_key,
        "POST",
        "/v1/offers",
        json={"title": "Held", "geofence_ids": [fence["id"]], "holdout_pct": 50},
    )
    lat, lon = LISBON
    for n in range(40):  # both halves of a 50 % split reach k (an arm under 3 of 12 had a 4 % chance)
        call(site, app_key, "GET", "/v1/nearby", params={"lat": lat, "lon": lon, "device_id": f"lift-{n}"})
    deadline = time.monotonic() + 30
    while (lift := call(site, adops_key, "GET", "/v1/reports/lift", params={"offer_id": held["id"]}))["ci95"] is None:
        assert time.monotonic() < deadline, f"the consumer has not stored the ghosts and impressions: {lift}"
        time.sleep(0.3)
    page.reload()  # the scope list is read when the page opens
    page.wait_for_selector(f"#scope option[value='offer_id={held['id']}']", state="attached")
    show_report(page, f"offer_id={held['id']}")
    card = page.wait_for_selector("#lift-card")
    assert "visits per 100 reached (95 % CI" in card.inner_text() and "holdout 50 %" in card.inner_text()
    page.screenshot(path=str(ARTIFACTS / "adops-lift.png"), full_page=True)
