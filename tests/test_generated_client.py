"""A client generated from /openapi.json by openapi-python-client works end to end against a real server:
merchant, fence, offer, nearby, reach, and a 422 parsed as ``ErrorBody``. Generation must be clean (a schema the
generator cannot read drops that operation from the client silently), and functions carry the operation ids."""

from __future__ import annotations

import importlib
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving

PACKAGE = "geotarget_client"


@pytest.fixture
def generated(tmp_path: Path, redis_url: str):
    with serving(tmp_path / "data", redis_url, "client-admin") as [base]:
        spec = tmp_path / "openapi.json"
        spec.write_text(httpx.get(f"{base}/openapi.json").text)
        generator = Path(sys.executable).with_name("openapi-python-client")
        command = [str(generator), "generate", "--path", str(spec), "--output-path", str(tmp_path / PACKAGE)]
        done = subprocess.run([*command, "--meta", "none"], capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Warning" not in done.stdout and "WARNING" not in done.stdout, done.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            yield base, importlib.import_module(PACKAGE)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]


@pytest.mark.slow
def test_a_generated_client_runs_the_main_flow(generated):
    base, client_package = generated
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    for module in ("accounts.create_merchant", "accounts.create_app_key", "geofences.create_fence",
                   "offers.create_offer", "serving.nearby", "reports.reach_report"):  # fmt: skip
        importlib.import_module(f"{PACKAGE}.api.{module}")

    clients = ExitStack()  # each generated client holds a connection pool: closed at the end

    def client_with(key: str):
        return clients.enter_context(client_package.AuthenticatedClient(base_url=base, token=key))

    with clients:
        _flow(api, models, client_with, INSIDE_ALFAMA_CAFE)


def _flow(api, models, client_with, inside) -> None:
    admin = client_with("client-admin")
    merchant = api.accounts.create_merchant.sync(client=admin, body=models.MerchantIn(name="Café Tejo"))
    assert isinstance(merchant, models.IssuedKeyOut) and merchant.id.startswith("mer_")
    cafe = client_with(merchant.api_key)

    fence = api.geofences.create_fence.sync(client=cafe, body=models.PolygonFeature.from_dict(ALFAMA_CAFE))
    assert isinstance(fence, models.FeatureOut), fence
    offer_fields = models.OfferFields.from_dict(
        {"title": "2-for-1 lattes", "geofence_ids": [fence.id], "status": "active"}
    )
    offer = api.offers.create_offer.sync(client=cafe, body=offer_fields)
    assert offer.title == "2-for-1 lattes"

    app_key = api.accounts.create_app_key.sync(client=admin, body=models.AppIn(name="Lisbon Guide"))
    phone = client_with(app_key.api_key)
    answer = api.serving.nearby.sync(client=phone, device_id="phone-1", **inside)
    assert isinstance(answer, models.NearbyOut) and [o.title for o in answer.offers] == ["2-for-1 lattes"]

    reach = api.reports.reach_report.sync(client=cafe, merchant_id=merchant.id)
    assert isinstance(reach, models.ReachOut)

    refused = api.serving.nearby.sync(client=phone, device_id="phone-1", lat=123.0, lon=0.0)
    assert isinstance(refused, models.ErrorBody)
    assert (refused.error.code, refused.error.field) == ("invalid", "lat")
