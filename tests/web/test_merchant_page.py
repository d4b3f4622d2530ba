"""/merchant in a real browser: log in, draw fences by clicking on the map, edit and delete them, see their H3
cells and the API's errors beside the shape, upload a file, create and edit offers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web.browsing import (
    ARTIFACTS,
    LISBON,
    admin,
    call,
    click_on_map,
    drag_on_map,
    draw_polygon,
    log_in,
    square,
)

pytestmark = pytest.mark.slow


def test_merchant_draws_a_fence_sees_its_cells_and_attaches_an_offer(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Browser Café", "timezone": "Europe/Lisbon"})["api_key"]
    log_in(page, f"{site}/merchant", key)
    assert key not in page.url
    assert page.evaluate("sessionStorage.getItem('geotarget.merchantKey')") == key
    page.wait_for_selector("#fence-list li.empty")
    page.wait_for_selector("#map.tiles-unavailable")  # tiles cannot load here: plain background, page goes on

    page.evaluate(f"geotarget.map.setView([{LISBON[0]}, {LISBON[1]}], 17, {{animate: false}})")
    corners = square(*LISBON, 0.00135, 0.0017)  # about 300 m x 300 m
    draw_polygon(page, corners)
    page.fill("#shape-name", "Café Alfama")
    page.click("#shape-save")
    page.wait_for_selector("#fence-list li:has-text('Café Alfama')")
    page.wait_for_selector("path.cell-interior")
    assert page.locator("path.cell-boundary").count() > 0
    page.screenshot(path=str(ARTIFACTS / "merchant-fence-and-cells.png"))

    stored = call(site, key, "GET", "/v1/geofences")["features"]
    assert len(stored) == 1
    fence = stored[0]
    assert fence["properties"]["name"] == "Café Alfama"
    assert fence["geometry"]["type"] == "Polygon"
    ring = fence["geometry"]["coordinates"][0]
    for (lat, lon), (got_lon, got_lat) in zip(corners, ring, strict=False):
        assert abs(got_lat - lat) < 2e-5 and abs(got_lon - lon) < 2e-5  # a click lands within a pixel (~1 m)
    assert 80_000 < fence["properties"]["area_m2"] < 100_000
    cells_drawn = page.locator("path.cell").count()
    h3 = fence["properties"]["h3"]
    assert cells_drawn == h3["interior_cells"] + h3["boundary_cells"]

    page.click("#offer-new")
    page.fill("#offer-form [name=title]", "2-for-1 lattes")
    page.check("#offer-form [name=special]")
    page.click("#window-add")
    page.fill("#offer-form [name=per_device_per_day]", "2")
    assert page.is_checked(f"#offer-fences input[value='{fence['id']}']")  # the selected fence is preselected
    page.click("#offer-save")
    page.wait_for_selector("#offer-list li:has-text('2-for-1 lattes')")
    page.wait_for_selector("#fence-list li:has-text('Offers: 2-for-1 lattes')")
    (offer,) = call(site, key, "GET", "/v1/offers")["offers"]
    assert offer["special"] is True
    assert offer["geofence_ids"] == [fence["id"]]
    assert offer["caps"] == {"per_device_per_day": 2}
    assert offer["schedule"]["windows"] == [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "10:00"}
    ]
    page.screenshot(path=str(ARTIFACTS / "merchant-offer.png"))

    page.click("#offer-list li:has-text('2-for-1 lattes')")  # edit it
    assert page.input_value("#offer-form [name=per_device_per_day]") == "2"
    assert page.input_value("#windows [data-part=start]") == "07:00"
    page.fill("#offer-form [name=per_device_per_day]", "3")
    page.uncheck("#offer-form [name=special]")
    page.fill("#offer-form [name=bid_cpm]", "2.75")  # and put it on ad exchanges
    page.click("#offer-save")
    page.wait_for_selector("#status:has-text('Saved offer')")
    (edited,) = call(site, key, "GET", "/v1/offers")["offers"]
    assert (edited["version"], edited["special"], edited["caps"]) == (2, False, {"per_device_per_day": 3})
    assert edited["bid_cpm"] == 2.75
    page.click("#offer-list li:has-text('2-for-1 lattes')")
    assert page.input_value("#offer-form [name=bid_cpm]") == "2.75"
    assert edited["schedule"] == offer["schedule"] and edited["trigger"] is None

    page.click("#offer-list li:has-text('2-for-1 lattes')")  # push it to devices that stay two minutes
    page.select_option("#offer-form [name=trigger_on]", "dwell")
    page.fill("#offer-form [name=trigger_dwell_s]", "30")
    page.click("#offer-save")
    page.wait_for_selector("#offer-error:has-text('dwell_s')")  # the API's rule, shown by the field
    page.fill("#offer-form [name=trigger_dwell_s]", "120")
    page.click("#offer-save")
    page.wait_for_selector("#offer-list li:has-text('push on dwell')")
    (pushed,) = call(site, key, "GET", "/v1/offers")["offers"]
    assert pushed["trigger"] == {"on": "dwell", "dwell_s": 120}
    page.click("#offer-list li:has-text('2-for-1 lattes')")
    assert page.input_value("#offer-form [name=trigger_on]") == "dwell"
    assert page.input_value("#offer-form [name=trigger_dwell_s]") == "120"


def test_merchant_draws_rectangles_and_circles_edits_one_and_deletes_another(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Shape Shop", "timezone": "Europe/Lisbon"})["api_key"]
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete the fence …?"
    log_in(page, f"{site}/merchant", key)
    lat, lon = LISBON
    page.evaluate(f"geotarget.map.setView([{lat}, {lon}], 18, {{animate: false}})")
    page.click(".leaflet-pm-icon-rectangle")
    click_on_map(page, lat - 0.0003, lon - 0.0004)
    click_on_map(page, lat + 0.0003, lon + 0.0004)
    page.fill("#shape-name", "Shop floor")
    page.fill("#shape-tags", "cafe, terrace")
    page.fill("#shape-timezone", "Mars/Olympus_Mons")
    page.click("#shape-save")
    page.wait_for_selector("#shape-timezone.invalid")
    assert "properties.timezone" in page.inner_text("#shape-error")
    page.fill("#shape-timezone", "Atlantic/Azores")
    page.click("#shape-save")
    page.wait_for_selector("#fence-list li:has-text('Shop floor')")
    assert page.locator("#shape-form .invalid").count() == 0
    page.click(".leaflet-pm-icon-circle")
    click_on_map(page, lat + 0.0006, lon + 0.0008)
    click_on_map(page, lat + 0.0006, lon + 0.0008 + 40 / (111_195 * 0.7817))  # about 40 m east
    page.fill("#shape-name", "Terrace")
    page.click("#shape-save")
    page.wait_for_selector("#fence-list li:has-text('Terrace')")
    fences = {f["properties"]["name"]: f for f in call(site, key, "GET", "/v1/geofences")["features"]}
    assert fences["Terrace"]["geometry"]["type"] == "Point"
    assert 38 < fences["Terrace"]["properties"]["radius_m"] < 42
    assert fences["Shop floor"]["geometry"]["type"] == "Polygon"
    assert fences["Shop floor"]["properties"]["tags"] == ["cafe", "terrace"]
    assert fences["Shop floor"]["properties"]["timezone"] == "Atlantic/Azores"
    assert fences["Terrace"]["properties"]["timezone"] == "Europe/Lisbon"  # derived from where it is

    page.click("#fence-list li:has-text('Shop floor')")
    page.click(".leaflet-pm-icon-edit")
    drag_on_map(page, (lat + 0.0003, lon + 0.0004), (lat + 0.0005, lon + 0.0006))  # pull the NE corner out
    page.click(".leaflet-pm-icon-edit")  # leave edit mode
    page.wait_for_selector("#shape-info:has-text('not saved yet')")
    page.click("#shape-save")
    page.wait_for_selector("#status:has-text('Saved fence “Shop floor”')")
    moved = call(site, key, "GET", f"/v1/geofences/{fences['Shop floor']['id']}")
    assert moved["properties"]["version"] == 2
    assert moved["properties"]["timezone"] == "Atlantic/Azores"  # kept as the form showed it

    assert moved["properties"]["area_m2"] > fences["Shop floor"]["properties"]["area_m2"] * 1.2
    assert any(
        abs(y - (lat + 0.0005)) < 2e-5 and abs(x - (lon + 0.0006)) < 2e-5
        for x, y in moved["geometry"]["coordinates"][0]
    )

    page.click("#fence-list li:has-text('Terrace')")
    page.click("#shape-delete")
    page.wait_for_selector("#status:has-text('Deleted fence “Terrace”')")
    assert [f["properties"]["name"] for f in call(site, key, "GET", "/v1/geofences")["features"]] == ["Shop floor"]
    assert page.locator("#fence-list li").count() == 1
    page.screenshot(path=str(ARTIFACTS / "merchant-edited.png"))


def test_merchant_sees_api_errors_beside_the_shape_and_the_field(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Bow-tie Bakery"})["api_key"]
    page.on("dialog", lambda dialog: dialog.accept())

    log_in(page, f"{site}/merchant", key)
    page.evaluate(f"geotarget.map.setView([{LISBON[0]}, {LISBON[1]}], 17, {{animate: false}})")
    lat, lon = LISBON
    bow_tie = [
        (lat - 0.001, lon - 0.001),
        (lat + 0.001, lon + 0.001),
        (lat + 0.001, lon - 0.001),
        (lat - 0.001, lon + 0.001),
    ]
    draw_polygon(page, bow_tie)
    page.click("#shape-save")
    tooltip = page.wait_for_selector(".leaflet-tooltip.shape-error")
    assert "intersects itself" in tooltip.inner_text()
    assert "intersects itself" in page.inner_text("#shape-error")
    assert call(site, key, "GET", "/v1/geofences")["features"] == []
    page.screenshot(path=str(ARTIFACTS / "merchant-shape-error.png"))

    page.click("#shape-repair")  # make_valid: the bow tie becomes two triangles
    page.wait_for_selector("#fence-list li:has-text('multipolygon')")
    (repaired,) = call(site, key, "GET", "/v1/geofences")["features"]
    assert repaired["geometry"]["type"] == "MultiPolygon"
    assert page.is_hidden("#shape-repair")
    page.click("#shape-delete")  # with the confirmation accepted
    page.wait_for_selector("#fence-list li.empty")

    page.click("#offer-new")
    page.fill("#offer-form [name=title]", "No fence chosen")
    page.click("#offer-save")
    page.wait_for_selector("fieldset[data-field=geofence_ids].invalid")
    assert "geofence_ids" in page.inner_text("#offer-error")
    assert call(site, key, "GET", "/v1/offers")["offers"] == []


def test_merchant_uploads_a_geojson_file_and_sees_what_was_refused(site: str, page: Any, tmp_path: Path) -> None:
    key = admin(site, "/v1/merchants", {"name": "Upload Gym"})["api_key"]
    lat, lon = LISBON
    upload = tmp_path / "fences.geojson"
    upload.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "Gym Rossio", "radius_m": 40},
                        "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    },
                    {
                        "type": "Feature",
                        "properties": {"name": "Nowhere"},
                        "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    },
                ],
            }
        )
    )
    log_in(page, f"{site}/merchant", key)
    page.set_input_files("#upload-file", str(upload))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-result:has-text('1 fence(s) created, 1 rejected')")
    assert "feature 1" in page.inner_text("#upload-result")
    page.wait_for_selector("#fence-list li:has-text('Gym Rossio')")
    assert page.locator("#map path.leaflet-interactive").count() == 1  # the circle is on the map


def test_pages_refuse_keys_of_the_wrong_kind(site: str, page: Any) -> None:
    app_key = admin(site, "/v1/apps", {"name": "phone app"})["api_key"]
    log_in_attempt = page.goto(f"{site}/merchant")
    assert log_in_attempt.headers["content-security-policy"].startswith("default-src 'self'")
    page.fill("#login-key", "not-a-key")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('unknown, expired or revoked API key')")
    page.fill("#login-key", app_key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('may not use this page')")
    assert page.is_hidden("#workspace")
    assert page.evaluate("sessionStorage.getItem('geotarget.merchantKey')") is None


def test_text_a_merchant_typed_is_shown_as_text_never_as_html(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Markup Market", "timezone": "Europe/Lisbon"})["api_key"]
    log_in(page, f"{site}/merchant", key)
    page.evaluate(f"geotarget.map.setView([{LISBON[0]}, {LISBON[1]}], 18, {{animate: false}})")
    draw_polygon(page, square(*LISBON, 0.0003, 0.0004))
    page.fill("#shape-timezone", '<img id="injected" src="x">')
    page.click("#shape-save")
    tooltip = page.wait_for_selector(".leaflet-tooltip.shape-error")
    assert '<img id="injected" src="x">' in tooltip.inner_text()
    assert page.query_selector("#injected") is None
