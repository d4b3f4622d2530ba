"""The merchant page's till and webhooks screens in a real browser: a code typed at the till is good once (a
unique one) or always (a static one) and says for which offer; a webhook is subscribed with its secret shown
once beside a recipe that really checks the signature of the test event it sends."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.web.browsing import ARTIFACTS, admin, call, log_in
from tests.webhook_receiver import receiver

pytestmark = pytest.mark.slow
SHOP = (38.7262, -9.1497)  # away from the other browser tests' fences


def _store_with_two_offers(site: str, key: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    feature = {"type": "Feature", "properties": {"name": "Till Café", "radius_m": 40},
               "geometry": {"type": "Point", "coordinates": [SHOP[1], SHOP[0]]}}  # fmt: skip
    fence = call(site, key, "POST", "/v1/geofences", json=feature)
    latte = {"title": "Two lattes", "geofence_ids": [fence["id"]], "redemption": {"code": "LATTE2"}, "priority": 90}
    cake = {"title": "Free cake", "geofence_ids": [fence["id"]], "redemption": {"unique": True}}
    return fence, call(site, key, "POST", "/v1/offers", json=latte), call(site, key, "POST", "/v1/offers", json=cake)


def _redeem(page: Any, code: str) -> str:
    page.fill("#till-code", code)
    page.click("#till-redeem")  # the till clears its last answer at once, then says the new one
    return str(page.locator("#till-result:not(:empty)").inner_text())


def test_the_till_redeems_a_static_code_always_and_a_unique_code_once(site: str, page: Any) -> None:
    key = admin(site, "/v1/merchants", {"name": "Till Café", "timezone": "Europe/Lisbon"})["api_key"]
    app_key = admin(site, "/v1/apps", {"name": "till app"})["api_key"]
    _, latte, cake = _store_with_two_offers(site, key)
    shown = call(site, app_key, "GET", "/v1/nearby", params={"lat": SHOP[0], "lon": SHOP[1], "device_id": "till-1"})
    unique = next(o["redemption_code"] for o in shown["offers"] if o["offer_id"] == cake["id"])
    deadline = time.monotonic() + 30  # a unique code is good once the consumer has stored its impression
    params = {"offer_id": cake["id"]}  # one device: its day is suppressed (null), no longer 0
    while all(r["impressions"] == 0 for r in call(site, key, "GET", "/v1/reports/reach", params=params)["rows"]):
        assert time.monotonic() < deadline, "the consumer has not stored the impression"
        time.sleep(0.3)

    log_in(page, f"{site}/merchant", key)
    page.wait_for_selector("#fence-list li:has-text('Till Café')")
    assert _redeem(page, "latte2").startswith("Good: “Two lattes” (static code)")
    assert _redeem(page, "LATTE2").startswith("Good: “Two lattes”")  # a static code is good every time
    assert _redeem(page, unique.lower().replace("-", " ")).startswith("Good: “Free cake” (unique code)")
    again = _redeem(page, unique)
    assert again.startswith("Already redeemed") and page.locator("#till-code.invalid").count() == 1
    assert _redeem(page, "NOPE-NOPE").startswith("Not a code of yours")
    assert page.locator("#till-log li").count() == 3 and latte["title"] in page.inner_text("#till-log")
    page.screenshot(path=str(ARTIFACTS / "merchant-till.png"), full_page=True)


def test_a_webhook_is_subscribed_its_secret_shown_once_with_a_recipe_that_checks_the_test_event(
    site: str, page: Any
) -> None:
    key = admin(site, "/v1/merchants", {"name": "Hook Café", "timezone": "Europe/Lisbon"})["api_key"]
    fence, _, _ = _store_with_two_offers(site, key)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, f"{site}/merchant", key)
    page.wait_for_selector("#webhook-list li.empty")
    page.wait_for_selector(f"#webhook-fences input[value='{fence['id']}']")

    page.fill("#webhook-form [name=url]", "ftp://example.com/hooks")
    page.click("#webhook-save")
    page.wait_for_selector("#webhook-form [name=url].invalid")  # the field to change, outlined
    assert "Value error" not in page.inner_text("#webhook-error") and page.inner_text("#webhook-error")

    with receiver() as hooks:
        page.fill("#webhook-form [name=url]", hooks.url)
        page.check(f"#webhook-fences input[value='{fence['id']}']")
        page.click("#webhook-save")
        page.wait_for_selector("#webhook-secret:not([hidden])")
        secret = page.input_value("#webhook-secret-value")
        recipe = page.inner_text("#webhook-recipe")
        assert secret.startswith("whsec_") and secret in recipe
        assert page.locator("#webhook-form .invalid").count() == 0
        (subscribed,) = call(site, key, "GET", "/v1/webhooks")["webhooks"]
        assert (subscribed["events"], subscribed["geofence_ids"]) == (["enter", "exit"], [fence["id"]])
        item = page.locator(f"#webhook-list li[data-id='{subscribed['id']}']")
        assert "Till Café" in item.inner_text() and "enter, exit" in item.inner_text()
        page.screenshot(path=str(ARTIFACTS / "merchant-webhook-secret.png"), full_page=True)

        item.locator("[data-part=test]").click()
        result = item.locator("[data-part=test-result]")
        result.wait_for()
        assert result.inner_text().startswith("Delivered: your server answered 200")
        (sent,) = hooks.wait_for(lambda seen: len(seen) == 1)
        namespace: dict[str, Any] = {}
        exec(recipe, namespace)  # the recipe as shown, run as a receiver would
        assert namespace["genuine"](sent.headers, sent.body) is True
        assert namespace["genuine"](sent.headers, sent.body + b" ") is False  # a changed body is caught

    page.click("#webhook-secret-done")
    assert page.locator("#webhook-secret").is_hidden() and page.input_value("#webhook-secret-value") == ""
    page.reload()
    page.wait_for_selector(f"#webhook-list li[data-id='{subscribed['id']}']")
    assert secret not in page.content()  # shown once: never again
    item = page.locator(f"#webhook-list li[data-id='{subscribed['id']}']")
    item.locator("[data-part=deliveries]").click()
    assert "No deliveries yet" in item.locator("[data-part=delivery]").inner_text()
    item.locator("button.danger").click()
    page.wait_for_selector("#webhook-list li.empty")
    assert call(site, key, "GET", "/v1/webhooks")["webhooks"] == []
