"""The merchant map's "Why not shown here?": a click on the map answers, for the merchant's own offers, what a
phone there gets now and why not the rest, from the decision explainer."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.web.browsing import ARTIFACTS, admin, call, click_on_map, log_in

pytestmark = pytest.mark.slow
SHOP = (38.7215, -9.1585)  # away from the other browser tests' fences
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def test_a_click_on_the_map_says_which_offers_show_there_and_why_not_the_others(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Why Café", "timezone": "Europe/Lisbon"})["api_key"]
    feature = {"type": "Feature", "properties": {"name": "Why Café", "radius_m": 60},
               "geometry": {"type": "Point", "coordinates": [SHOP[1], SHOP[0]]}}  # fmt: skip
    fence = call(site, key, "POST", "/v1/geofences", json=feature)["id"]
    other_day = DAYS[(datetime.now(ZoneInfo("Europe/Lisbon")).weekday() + 2) % 7]
    later = {"windows": [{"days": [other_day], "start": "00:00", "end": "24:00"}]}
    call(site, key, "POST", "/v1/offers", json={"title": "Always on", "geofence_ids": [fence]})
    call(site, key, "POST", "/v1/offers", json={"title": "Another day", "geofence_ids": [fence], "schedule": later})

    log_in(page, f"{site}/merchant", key)
    page.wait_for_selector("#offer-list li:has-text('Another day')")
    page.click("#why-not")
    click_on_map(page, *SHOP)
    answer = page.wait_for_selector(".why-not")
    text = answer.inner_text()
    assert "Always on — shown here now" in text
    assert "Another day — not live now" in text and "Europe/Lisbon" in text
    page.wait_for_timeout(400)  # the popup pans the map into view
    page.screenshot(path=str(ARTIFACTS / "merchant-why-not.png"))
