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
