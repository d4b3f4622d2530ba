"""From audience to lift in a real browser: a merchant draws an audience-only fence around a rival, builds an
audience of its visitors and targets an offer at it with a holdout; ad ops then read the offer's lift card."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.web.browsing import ARTIFACTS, admin, call, draw_polygon, log_in, square

pytestmark = pytest.mark.slow
RIVAL = (38.7190, -9.1420)  # away from the other browser tests' fences
CAFE = (38.7170, -9.1440)
FANS = 40  # both halves of a 50 % holdout reach k whatever the split


def test_a_merchant_targets_a_rivals_visitors_and_ad_ops_see_the_lift(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Audience Café", "timezone": "Europe/Lisbon"})["api_key"]
    adops_key = admin(site, "/v1/apps", {"name": "ad ops", "role": "adops"})["api_key"]
    app_key = admin(site, "/v1/apps", {"name": "audience app"})["api_key"]
    cafe = call(
        site,
        key,
        "POST",
        "/v1/geofences",
        json={
            "type": "Feature",
            "properties": {"name": "Our café", "radius_m": 40},
            "geometry": {"type": "Point", "coordinates": [CAFE[1], CAFE[0]]},
        },
    )

    log_in(page, f"{site}/merchant", key)
    page.wait_for_selector("#status:has-text('Draw a polygon')")  # started: the map has fitted the café's fence
    page.evaluate(f"geotarget.map.setView([{RIVAL[0]}, {RIVAL[1]}], 17, {{animate: false}})")
    draw_polygon(page, square(*RIVAL, 0.0004, 0.0005))
    page.fill("#shape-name", "Rival roastery")
    page.check("#shape-audience")
    page.click("#shape-save")
    page.wait_for_selector("#fence-list li:has-text('audience only')")
    rival = next(
        f for f in call(site, key, "GET", "/v1/geofences")["features"] if f["properties"].get("purpose") == "audience"
    )
    page.wait_for_selector(f"#audience-fences input[value='{rival['id']}']")
    assert page.locator(f"#offer-fences input[value='{rival['id']}']").count() == 0  # no offers there

    at = int(time.time()) - 600
    pings = [
        {"device_id": f"fan-{n}", "lat": RIVAL[0], "lon": RIVAL[1], "ts": at, "accuracy_m": 10} for n in range(FANS)
    ]
    assert call(site, app_key, "POST", "/v1/pings", json={"pings": pings})["accepted"] == FANS
    deadline = time.monotonic() + 30
    params = {"geofence_id": rival["id"]}
    while (call(site, key, "GET", "/v1/reports/reach", params=params)["totals"]["visitors"] or 0) < FANS:
        assert time.monotonic() < deadline, "the consumer has not stored the rival's visits"
        time.sleep(0.3)

    page.fill("#audience-form [name=audience_name]", "Rival's regulars")
    page.select_option("#audience-form [name=kind]", "regulars")
    page.fill("#audience-form [name=min_days]", "10")
    page.fill("#audience-form [name=days]", "7")
    page.check(f"#audience-fences input[value='{rival['id']}']")
    page.click("#audience-save")
    page.wait_for_selector("#audience-form [name=min_days].invalid")  # the field to change, outlined
    said = page.inner_text("#audience-error")
    assert said.startswith("10 days of visits cannot fit in a window of 7 days"), said
    assert page.locator("#audience-form .invalid").count() == 1 and "Value error" not in said

    page.fill("#audience-form [name=audience_name]", "Rival's visitors")
    page.select_option("#audience-form [name=kind]", "visitors")
    page.fill("#audience-form [name=days]", "30")
    page.click("#audience-save")
    page.wait_for_selector(f"#audience-list li:has-text('{FANS} devices')")
    (audience,) = call(site, key, "GET", "/v1/audiences")["audiences"]
    assert (audience["size"], audience["rule"]["geofence_ids"]) == (FANS, [rival["id"]])

    page.click("#offer-new")
    page.fill("#offer-form [name=title]", "Try our beans")
    page.check(f"#offer-fences input[value='{cafe['id']}']")
    page.select_option(f"#offer-audiences select[data-audience='{audience['id']}']", "include")
    page.fill("#offer-form [name=holdout_pct]", "50")
    page.fill("#offer-form [name=redemption_code]", "unique")
    page.click("#offer-save")
    page.wait_for_selector("#offer-list li:has-text('Try our beans')")
    (offer,) = call(site, key, "GET", "/v1/offers")["offers"]
    assert offer["targeting"] == {"audiences": {"include": [audience["id"]], "exclude": []}}
    assert (offer["holdout_pct"], offer["redemption"]) == (50, {"unique": True})
    page.screenshot(path=str(ARTIFACTS / "merchant-audience.png"), full_page=True)

    shown = 0
    for n in range(FANS):
        answer = call(
            site, app_key, "GET", "/v1/nearby", params={"lat": CAFE[0], "lon": CAFE[1], "device_id": f"fan-{n}"}
        )
        shown += len(answer["offers"])
        assert all(o["redemption_code"] for o in answer["offers"])
    stranger = call(
        site, app_key, "GET", "/v1/nearby", params={"lat": CAFE[0], "lon": CAFE[1], "device_id": "stranger"}
    )
    assert stranger["offers"] == [] and 0 < shown < FANS  # members only, less the held-out half
    deadline = time.monotonic() + 30

    def stored(lift: dict[str, Any]) -> bool:
        """Every impression and ghost is in the event store (the consumer writes them in batches: the CI may
        be known before the last batch is)."""
        counted = (lift["exposed"]["devices"] or 0) + (lift["control"]["devices"] or 0)
        return lift["ci95"] is not None and counted == FANS

    while not stored(lift := call(site, adops_key, "GET", "/v1/reports/lift", params={"offer_id": offer["id"]})):
        assert time.monotonic() < deadline, f"the consumer has not stored the impressions and ghosts: {lift}"
        time.sleep(0.3)
    assert lift["exposed"]["devices"] == shown and lift["control"]["devices"] == FANS - shown

    log_in(page, f"{site}/adops", adops_key)
    page.wait_for_selector(f"#scope option[value='offer_id={offer['id']}']", state="attached")
    page.select_option("#scope", f"offer_id={offer['id']}")
    page.click("#query button[type=submit]")
    card = page.wait_for_selector("#lift-card:has-text('holdout 50 %')")  # not a card left from the first scope
    assert "visits per 100 reached (95 % CI" in card.inner_text() and "holdout 50 %" in card.inner_text()
    page.screenshot(path=str(ARTIFACTS / "adops-audience-lift.png"), full_page=True)
