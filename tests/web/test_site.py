"""The site around the pages: the home page, assets served from this server only, vendored versions = the lock."""

from __future__ import annotations

import json
from pathlib import Path

import httpx


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
    web = Path(__file__).resolve().parents[2] / "api" / "web"
    lock = json.loads((web / "package-lock.json").read_text())
    vendored = dict(
        line.split()[:2] for line in (web / "static" / "vendor" / "VERSIONS.txt").read_text().splitlines() if line
    )
    for name in json.loads((web / "package.json").read_text())["dependencies"]:
        assert vendored[name] == lock["packages"][f"node_modules/{name}"]["version"], name


def test_the_api_reference_renders_offline_under_the_strict_policy(site: str, page) -> None:
    """/docs with every request to another host refused: Swagger UI comes from this server and lists the API."""
    outside: list[str] = []
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    def only_this_server(route) -> None:
        if route.request.url.startswith(site):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    answer = page.goto(f"{site}/docs")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page.wait_for_selector("#operations-serving-nearby", timeout=15_000)
    assert page.locator(".opblock").count() >= 40
    assert page.locator(".info .title").inner_text().startswith("geotarget")
    assert not outside, f"/docs asked other hosts: {outside}"
    assert not violations, violations
