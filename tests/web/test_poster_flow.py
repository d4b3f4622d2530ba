"""Offline meets online, end to end in a real browser: a merchant prints an offer's poster, customers scan its
QR code and see the offer with a unique code, the till takes the code read from its own QR code, and the reach
report shows the scans and the redemptions they led to."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from tests.web.browsing import ARTIFACTS, K, admin, call, log_in

pytestmark = pytest.mark.slow
SHOP = (38.7301, -9.1535)  # away from the other browser tests' fences


def read_qr(png: bytes) -> str:
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(found.text)


def test_a_printed_poster_is_scanned_redeemed_at_the_till_and_reported(site: str, browser: Any, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Poster Café", "timezone": "Europe/Lisbon"})["api_key"]
    feature = {"type": "Feature", "properties": {"name": "Poster Café Graça", "radius_m": 30},
               "geometry": {"type": "Point", "coordinates": [SHOP[1], SHOP[0]]}}  # fmt: skip
    call(site, key, "POST", "/v1/geofences", json=feature)
    offer = {"title": "Pastel de nata on us", "body": "With any coffee, this week.", "all_geofences": True,
             "redemption": {"unique": True}, "caps": {"per_device_lifetime": 1}}  # fmt: skip
    offer_id = call(site, key, "POST", "/v1/offers", json=offer)["id"]

    log_in(page, f"{site}/merchant", key)
    page.click(f"#offer-list li[data-id='{offer_id}'] [data-part=poster]")
    sheet = page.wait_for_selector("#poster-sheet[data-link]")
    link = sheet.get_attribute("data-link")
    assert "Poster Café Graça" in page.inner_text("#poster-sheet") and link and "/o/" in link
    page.emulate_media(media="print")
    page.screenshot(path=str(ARTIFACTS / "poster-print.png"), full_page=True)
    assert page.locator("#workspace").is_hidden() and page.locator("#poster-print").is_hidden()
    assert read_qr(page.locator("#poster-qr").screenshot()) == link  # the printed code reads as the link
    page.emulate_media(media="screen")
    page.click("#poster-close")

    codes = []
    for n in range(K):  # K customers, each with their own phone (browser)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        try:
            landing = phone.new_page()
            answer = landing.goto(link)
            assert answer is not None and answer.status == 200
            assert "Pastel de nata on us" in landing.inner_text("h1") and "Poster Café Graça" in landing.inner_text(
                "h2"
            )
            shown = landing.inner_text(".code-text")
            landing.wait_for_function("() => document.querySelector('#code img').complete")
            assert read_qr(landing.locator("#code img").screenshot()) == shown  # the till's scanner reads the code
            codes.append(shown)
            if n == 0:
                landing.wait_for_selector("#store-map .leaflet-interactive")  # the store on its map
                landing.screenshot(path=str(ARTIFACTS / "poster-landing.png"), full_page=True)
        finally:
            phone.close()
    assert len(set(codes)) == K

    deadline = time.monotonic() + 30  # a unique code is good once the consumer has stored its impression
    while call(site, key, "GET", "/v1/reports/reach", params={"offer_id": offer_id})["totals"]["impressions"] != K:
        assert time.monotonic() < deadline, "the consumer has not stored the codes' impressions"
        time.sleep(0.3)
    for code in codes:  # scanned at the till: the scanner types the code's text and Enter
        page.fill("#till-code", code)
        page.press("#till-code", "Enter")
        assert page.locator("#till-result:not(:empty)").inner_text().startswith("Good: “Pastel de nata on us”")

    deadline = time.monotonic() + 30
    while (totals := call(site, key, "GET", "/v1/reports/reach", params={"offer_id": offer_id})["totals"])[
        "scan_redemptions"
    ] != K:
        assert time.monotonic() < deadline, f"the report has not caught up: {totals}"
        time.sleep(0.3)
    assert (totals["scans"], totals["redemptions"], totals["pushes"]) == (K, K, 0)
