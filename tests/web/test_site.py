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
