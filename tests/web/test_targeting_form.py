"""The offer form's targeting expression: a JSON typing mistake is told at once, a tree the API refuses outlines
the field with the API's words, and a saved tree (with the budget's pacing) comes back when the offer is opened
again, with each variant's live share and click rate."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from tests.web.browsing import ARTIFACTS, admin, call, log_in

pytestmark = pytest.mark.slow
SHOP = (38.7240, -9.1610)  # away from the other browser tests' fences


def test_a_targeting_expression_is_checked_saved_and_shown_again(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Expr Café", "timezone": "Europe/Lisbon"})["api_key"]
    feature = {"type": "Feature", "properties": {"name": "Expr Café", "radius_m": 30},
               "geometry": {"type": "Point", "coordinates": [SHOP[1], SHOP[0]]}}  # fmt: skip
    fence = call(site, key, "POST", "/v1/geofences", json=feature)["id"]
    log_in(page, f"{site}/merchant", key)
    page.wait_for_selector("#fence-list li:has-text('Expr Café')")
    page.click("#offer-new")
    page.fill("#offer-form [name=title]", "Students")
    page.check(f"#offer-fences input[value='{fence}']")
    field = "#offer-form [name=targeting_expr]"

    page.fill(field, '{"any": [')
    page.click("#offer-save")
    page.wait_for_selector(f"{field}.invalid")
    assert "not JSON" in page.inner_text("#offer-error")

    page.fill(field, json.dumps({"any": [{"attr": "age", "op": "in", "value": ["young"]}]}))
    page.click("#offer-save")
    page.wait_for_selector("#offer-error:has-text('age is tested with between')")
    assert page.locator(f"{field}.invalid").count() == 1 and "targeting.expr.any[0].op" in page.inner_text(
        "#offer-error"
    )
    page.screenshot(path=str(ARTIFACTS / "merchant-targeting-expr.png"), full_page=True)

    tree = {"any": [{"attr": "age", "op": "lte", "value": 25}, {"attr": "interests", "op": "in", "value": ["books"]}]}
    page.fill(field, json.dumps(tree))
    page.fill("#offer-form [name=daily_budget]", "300")
    page.select_option("#offer-form [name=pacing]", "even")
    variants = [{"id": "plain", "title": "Two coffees"}, {"id": "bold", "title": "TWO COFFEES", "weight": 3}]
    page.fill("#offer-form [name=variants]", json.dumps(variants))
    page.select_option("#offer-form [name=rotation]", "weighted")
    page.click("#offer-save")
    page.wait_for_selector("#offer-list li:has-text('Students')")
    (saved,) = call(site, key, "GET", "/v1/offers")["offers"]
    assert saved["targeting"]["expr"] == tree and (saved["daily_budget"], saved["pacing"]) == (300, "even")
    assert [v["id"] for v in saved["variants"]] == ["plain", "bold"] and saved["rotation"] == "weighted"
    assert "2 variants, weighted" in page.inner_text("#offer-list")
    page.click("#offer-list li:has-text('Students')")
    assert json.loads(page.input_value(field)) == tree and page.input_value("#offer-form [name=pacing]") == "even"
    assert [v["title"] for v in json.loads(page.input_value("#offer-form [name=variants]"))] == [
        "Two coffees",
        "TWO COFFEES",
    ]
    # the variants now: the share each gets (weights 1:3), then shown and clicked, with its click rate
    page.wait_for_selector("#variant-live tr[data-variant='bold']")
    assert page.inner_text("#variant-live tr[data-variant='plain'] [data-part=share]") == "25.0 %"
    assert page.inner_text("#variant-live tr[data-variant='bold'] [data-part=share]") == "75.0 %"
    app_key = admin(site, "/v1/apps", {"name": "variants app"})["api_key"]
    clicks = Counter()
    for n in range(60):  # at 1:3, the fewer variant still reaches k = 3 devices (P(not) ≈ 1e-5)
        params = {"lat": SHOP[0], "lon": SHOP[1], "device_id": f"variant-{n}", "age": 20}
        (shown,) = call(site, app_key, "GET", "/v1/nearby", params=params)["offers"]
        if n % 2 == 0:
            call(
                site,
                app_key,
                "POST",
                "/v1/interactions",
                json={"impression_id": shown["impression_id"], "type": "click"},
            )
            clicks[shown["variant_id"]] += 1
    deadline = time.monotonic() + 30
    while sum(v["impressions"] or 0 for v in call(site, key, "GET", "/v1/reports/variants",
                                                      params={"offer_id": saved["id"]})["variants"]) < 60:  # fmt: skip
        assert time.monotonic() < deadline, "the consumer has not stored the impressions"
        time.sleep(0.3)
    page.click("#offer-close")
    page.click("#offer-list li:has-text('Students')")
    page.wait_for_selector("#variant-live tr[data-variant='bold'] [data-part=clicks]")
    for variant in ("plain", "bold"):
        row = f"#variant-live tr[data-variant='{variant}']"
        assert page.inner_text(f"{row} [data-part=clicks]") == str(clicks[variant])
    page.locator("#variant-live").screenshot(path=str(ARTIFACTS / "merchant-variants-live.png"))
