"""The offer form's targeting expression: a JSON typing mistake is told at once, a tree the API refuses outlines
the field with the API's words, and a saved tree (with the budget's pacing) comes back when the offer is opened
again."""

from __future__ import annotations

import json
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
