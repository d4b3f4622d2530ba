"""The web pages in a real browser (Debian's Chromium, driven by Playwright) against a real ``geotarget serve``.

A merchant logs in, draws a fence by clicking on the map, saves it, sees it listed with its H3 cells, sees the API's
error beside a self-intersecting shape, uploads a file and creates an offer. Ad ops see a chart, a heatmap and a
table computed from the event store, with suppressed figures shown as such. Screenshots go to test-artifacts/web/.
Map tiles point at a closed port, so every test also shows the pages work on a plain background.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.servers import free_port, serving

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "web"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LISBON = (38.7115, -9.1305)
K = 3


def _chromium() -> str:
    found = os.environ.get("GEOTARGET_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("browser tests need Chromium in CI: apt-get install chromium (see .ci/run)")
    pytest.skip("no Chromium found (apt-get install chromium, or set GEOTARGET_TEST_CHROMIUM)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[str]:
    closed = free_port()  # nothing listens there: every tile fails
    with serving(
        tmp_path_factory.mktemp("web"),
        redis_url,
        ADMIN_KEY,
        tile_url=f"http://127.0.0.1:{closed}/{{z}}/{{x}}/{{y}}.png",
        report_min_devices=str(K),
    ) as bases:
        yield bases[0]


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab; script errors fail the test; a screenshot is kept whatever the outcome."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def admin(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{base}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def call(base: str, key: str, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(method, f"{base}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs)
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def log_in(page: Any, url: str, key: str) -> None:
    page.goto(url)
    page.fill("#login-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#workspace:not([hidden])")


def click_on_map(page: Any, lat: float, lon: float) -> None:
    x, y = page.evaluate(
        "([lat, lon]) => { const p = geotarget.map.latLngToContainerPoint([lat, lon]);"
        " const r = geotarget.map.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
        [lat, lon],
    )
    page.mouse.click(x, y)
    page.wait_for_timeout(80)


def draw_polygon(page: Any, corners: list[tuple[float, float]]) -> None:
    page.click(".leaflet-pm-icon-polygon")
    for lat, lon in corners:
        click_on_map(page, lat, lon)
    click_on_map(page, *corners[0])  # clicking the first vertex again closes the ring
    page.wait_for_selector("#shape-panel:not([hidden])")


def square(lat: float, lon: float, half_lat: float, half_lon: float) -> list[tuple[float, float]]:
    return [
        (lat - half_lat, lon - half_lon),
        (lat - half_lat, lon + half_lon),
        (lat + half_lat, lon + half_lon),
        (lat + half_lat, lon - half_lon),
    ]


def test_merchant_draws_a_fence_sees_its_cells_and_attaches_an_offer(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Browser Café", "timezone": "Europe/Lisbon"})["api_key"]
    log_in(page, f"{site}/merchant", key)
    assert key not in page.url
    assert page.evaluate("sessionStorage.getItem('geotarget.merchantKey')") == key
    page.wait_for_selector("#fence-list li.empty")
    page.wait_for_selector("#map.tiles-unavailable")  # tiles cannot load here: plain background, page goes on

    page.evaluate(f"geotarget.map.setView([{LISBON[0]}, {LISBON[1]}], 17)")
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
    page.click("#offer-save")
    page.wait_for_selector("#status:has-text('Saved offer')")
    (edited,) = call(site, key, "GET", "/v1/offers")["offers"]
    assert (edited["version"], edited["special"], edited["caps"]) == (2, False, {"per_device_per_day": 3})
    assert edited["schedule"] == offer["schedule"]


def drag_on_map(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    points = [
        page.evaluate(
            "([lat, lon]) => { const p = geotarget.map.latLngToContainerPoint([lat, lon]);"
            " const r = geotarget.map.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
            list(latlng),
        )
        for latlng in (start, end)
    ]
    page.mouse.move(*points[0])
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(
            points[0][0] + (points[1][0] - points[0][0]) * step / 10,
            points[0][1] + (points[1][1] - points[0][1]) * step / 10,
        )
    page.mouse.up()


def test_merchant_draws_rectangles_and_circles_edits_one_and_deletes_another(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Shape Shop", "timezone": "Europe/Lisbon"})["api_key"]
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete the fence …?"
    log_in(page, f"{site}/merchant", key)
    lat, lon = LISBON
    page.evaluate(f"geotarget.map.setView([{lat}, {lon}], 18)")
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
    page.evaluate(f"geotarget.map.setView([{LISBON[0]}, {LISBON[1]}], 17)")
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
    page.wait_for_selector("#login-error:has-text('unknown API key')")
    page.fill("#login-key", app_key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('may not use this page')")
    assert page.is_hidden("#workspace")
    assert page.evaluate("sessionStorage.getItem('geotarget.merchantKey')") is None


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


def show_report(page: Any, scope: str) -> None:
    page.select_option("#scope", scope)
    page.click("#query button[type=submit]")
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
    assert page.locator("#report-table tbody tr").count() == 30  # the default: the last 30 days
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


def test_home_links_the_pages_and_static_files_are_served_from_here(site: str) -> None:
    home = httpx.get(f"{site}/")
    assert home.status_code == 200
    assert 'href="/merchant"' in home.text and 'href="/adops"' in home.text
    page = httpx.get(f"{site}/adops").text
    sources = [s.split('"')[1] for s in page.split("src=")[1:]] + [s.split('"')[1] for s in page.split("href=")[1:]]
    local = [s for s in sources if s.startswith("/static/")]
    assert local and all(s.startswith(("/", "data:")) for s in sources)  # nothing from another host

    for path in local:
        assert httpx.get(f"{site}{path}").status_code == 200, path


def test_vendored_libraries_are_the_locked_versions() -> None:
    web = Path(__file__).resolve().parents[1] / "api" / "web"
    lock = json.loads((web / "package-lock.json").read_text())
    vendored = dict(
        line.split()[:2] for line in (web / "static" / "vendor" / "VERSIONS.txt").read_text().splitlines() if line
    )
    for name in json.loads((web / "package.json").read_text())["dependencies"]:
        assert vendored[name] == lock["packages"][f"node_modules/{name}"]["version"], name
