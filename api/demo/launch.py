"""``serve --demo``: load the demo city, send it two weeks of simulated traffic, and print keys to try."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from api.demo.city import DEMO_CITY, EXAMPLE_POINT, load_demo_city
from api.demo.traffic import simulate_once
from geofences import LatLng
from geotarget.runtime import Runtime
from geotarget.settings import Settings


def load_demo(settings: Settings, host: str, port: int, console: Console) -> None:
    runtime = Runtime.open(settings, follow=False)
    try:
        kept = settings.data_dir / "demo-keys.json"
        keys = load_demo_city(runtime.repository, runtime.fences, runtime.offers, kept)
        runtime.catalog.sync(runtime.repository)
        shops = [LatLng(s.lat, s.lon) for stores in DEMO_CITY.values() for s in stores]
        with console.status("Simulating two weeks of foot traffic through the serving path…"):
            sent = simulate_once(runtime.repository, runtime.server, shops, datetime.now(UTC))
        if sent:
            print(f"Sent {sent:,} simulated pings of demo phones; the reach dashboard (/adops) shows them.")
    finally:
        runtime.close()
    base = f"http://{host}:{port}"
    app_key, adops_key = keys.pop("app")[1], keys.pop("adops")[1]
    lines = [f"  {name:<20} {merchant_id}  {key}" for name, (merchant_id, key) in keys.items()]
    print("Demo city: central Lisbon (merchant, id, API key)\n" + "\n".join(lines))
    print(f"  app key:   {app_key}\n  adops key: {adops_key}")
    first_key = next(iter(keys.values()))[1]
    lat, lon = EXAMPLE_POINT
    print(
        f"Try:\n  curl -H 'Authorization: Bearer {app_key}' "
        f"'{base}/v1/nearby?lat={lat}&lon={lon}&device_id=demo-phone'\n"
        f"  curl -H 'Authorization: Bearer {first_key}' {base}/v1/geofences\n"
        f"  curl -H 'Authorization: Bearer {first_key}' "
        f"'{base}/v1/geofences/contains?lat={lat}&lon={lon}&within_m=500'\n"
        f"  Why each offer is shown there or not (a dry run: nothing is counted):\n"
        f"  curl -H 'Authorization: Bearer {first_key}' "
        f"'{base}/v1/explain?lat={lat}&lon={lon}&device_id=demo-phone'\n"
        f"  Pages: {base}/merchant (merchant key), {base}/adops (adops key)\n"
        f"  API docs: {base}/docs\n"
        f"These keys are kept in {kept} and shown again at the next start.\n"
        "Webhooks to a receiver on this machine (http://127.0.0.1:…) are refused unless the server runs with\n"
        "  GEOTARGET_WEBHOOK_ALLOW_PRIVATE=true (loopback and private addresses; docs/triggers.md)"
    )
