"""What the browser tests do through the API and on the map: admin calls, log in, click and drag at a place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
LISBON = (38.7115, -9.1305)
K = 3  # the served site's k: figures from fewer devices are suppressed


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
