"""The pages' layout at common screen sizes: no form control runs past its panel, a schedule window keeps its
two times on its line, in 24-hour time; fences are named on the map from the first view and their size is said
in a merchant's words."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.browsing import ARTIFACTS, admin, call, log_in

pytestmark = pytest.mark.slow

CUT_OPTIONS = """() => {
  // the widest option's text against the room a select gives it (its arrow and padding take about 28 px)
  const cut = [];
  const pen = document.createElement('canvas').getContext('2d');
  for (const select of document.querySelectorAll('.side select')) {
    if (!select.offsetParent) continue;
    pen.font = getComputedStyle(select).font;
    const widest = Math.max(...[...select.options].map(o => pen.measureText(o.text).width));
    if (widest + 28 > select.clientWidth) cut.push(`${select.name}: ${Math.round(widest)} px in ${select.clientWidth}`);
  }
  return cut;
}"""

OVERFLOWING = """() => {
  const side = document.querySelector('.side');
  const box = side.getBoundingClientRect();
  const right = box.left + side.clientLeft + side.clientWidth;  // inside the border, left of the scroll bar
  const late = [];
  for (const el of side.querySelectorAll('input, select, textarea, button, label, fieldset, .window')) {
    if (!el.offsetParent) continue;  // hidden
    const r = el.getBoundingClientRect();
    if (r.right > right + 0.5 || r.left < box.left - 0.5) {
      const name = el.name || el.id || el.dataset.field || el.textContent.trim().slice(0, 20);
      late.push(`${el.tagName.toLowerCase()}[${name}] ${r.left}..${r.right} > ${right}`);
    }
  }
  return late;
}"""


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1400, 900), (1920, 1080)])
def test_no_form_control_runs_past_the_merchant_side_panel(site: str, browser: Any, width: int, height: int) -> None:
    key = admin(site, "/v1/merchants", {"name": f"Layout {width}", "timezone": "Europe/Lisbon"})["api_key"]
    fence = {"type": "Feature", "properties": {"name": "Quiosque do Largo com um nome bem comprido", "radius_m": 40},
             "geometry": {"type": "Point", "coordinates": [-9.1395, 38.7108]}}  # fmt: skip
    call(site, key, "POST", "/v1/geofences", json=fence)
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = context.new_page()
    try:
        log_in(page, f"{site}/merchant", key)
        page.wait_for_selector("#fence-list li:has-text('Quiosque')")
        assert page.locator(".leaflet-tooltip.fence-label", has_text="Quiosque do Largo").is_visible()
        assert " map cell" in page.inner_text("#fence-list li") and "+" not in page.inner_text("#fence-list li")
        page.click("#offer-new")
        page.click("#window-add")
        page.wait_for_selector("#windows [data-window]")
        page.screenshot(path=str(ARTIFACTS / f"merchant-layout-{width}.png"), full_page=True)

        assert page.evaluate(OVERFLOWING) == []
        assert page.evaluate(CUT_OPTIONS) == []  # the Push select used to cut "— never: list it when apps ask —"
        start, end = (page.locator(f"#windows [data-part={part}]").bounding_box() for part in ("start", "end"))
        assert start is not None and end is not None and abs(start["y"] - end["y"]) < 2  # one line
        assert page.locator("#windows [data-part=end]").input_value() == "10:00"
        assert "AM" not in page.locator("#windows").inner_text() and "PM" not in page.locator("#windows").inner_text()
    finally:
        context.close()


LABELS = """() => {
  const shown = [...document.querySelectorAll('.leaflet-tooltip.fence-label')]
    .filter((n) => getComputedStyle(n).visibility !== 'hidden').map((n) => n.getBoundingClientRect());
  const shapes = [...document.querySelectorAll('path.leaflet-interactive')].map((n) => n.getBoundingClientRect());
  const meet = (a, b) => a.left < b.right && a.right > b.left && a.top < b.bottom && a.bottom > b.top;
  let overlaps = 0, covering = 0;
  shown.forEach((a, i) => shown.slice(i + 1).forEach((b) => { if (meet(a, b)) overlaps++; }));
  shown.forEach((a) => shapes.forEach((s) => { if (meet(a, s)) covering++; }));
  return { shown: shown.length, overlaps, covering };
}"""


def test_fence_names_give_way_and_never_hide_a_small_fence(site: str, browser: Any) -> None:
    """Small kiosks side by side: their names hung below the shapes, never over them, and a name that would
    overlap another waits for the zoom that makes room. An offer by tag is listed on each tagged fence."""
    key = admin(site, "/v1/merchants", {"name": "Kiosks", "timezone": "Europe/Lisbon"})["api_key"]
    for i in range(4):
        kiosk = {"type": "Feature", "properties": {"name": f"Quiosque número {i}", "radius_m": 6, "tags": ["kiosk"]},
                 "geometry": {"type": "Point", "coordinates": [-9.1395 + 0.002 * i, 38.7108]}}  # fmt: skip
        call(site, key, "POST", "/v1/geofences", json=kiosk)
    call(site, key, "POST", "/v1/offers", json={"title": "Kiosk week", "geofence_tags": ["kiosk"]})
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    try:
        log_in(page, f"{site}/merchant", key)
        page.wait_for_selector("#fence-list li:has-text('Quiosque número 3')")
        page.wait_for_timeout(300)  # labels are sorted out on the next frame
        close = page.evaluate(LABELS)  # the first view fits the fences: the closest zoom there is
        page.screenshot(path=str(ARTIFACTS / "merchant-labels.png"))
        for _ in range(3):
            page.click(".leaflet-control-zoom-out")
            page.wait_for_timeout(400)
        far = page.evaluate(LABELS)
        for seen in (close, far):
            assert seen["overlaps"] == 0 and seen["covering"] == 0 and seen["shown"] >= 1, seen
        assert far["shown"] < close["shown"], (far, close)
        assert page.inner_text("#fence-list").count("Kiosk week") == 4
        assert "every fence tagged “kiosk”" in page.inner_text("#offer-list")
    finally:
        context.close()
