"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, one real ``geotarget serve`` for the
session whose map tiles point at a closed port (so every test also shows the pages work on a plain background),
and a fresh tab per test that fails on script errors and leaves a screenshot in test-artifacts/web/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY
from tests.servers import free_port, serving
from tests.web.browsing import ARTIFACTS, K

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


def _chromium() -> str:
    found = os.environ.get("GEOTARGET_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("browser tests need Chromium in CI: apt-get install chromium (see .ci/run)")
    pytest.skip("no Chromium found (apt-get install chromium, or set GEOTARGET_TEST_CHROMIUM)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[str]:
    closed = free_port()  # nothing listens there: every tile fails
    with serving(
        tmp_path_factory.mktemp("web"),
        redis_url,
        ADMIN_KEY,
        tile_url=f"http://127.0.0.1:{closed}/{{z}}/{{x}}/{{y}}.png",
        report_min_devices=str(K),
        webhook_allow_private="true",  # the webhooks screen's test event goes to a receiver on loopback
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
