"""The ``geotarget`` command as a new user meets it: a mistake is one clear line and exit status 2, never a
traceback; a command run from the wrong folder says so instead of reporting on a new, empty deployment."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from tests.fixtures import ALFAMA_CAFE
from tests.servers import eventually


@pytest.fixture
def env(settings, runtime):
    """The environment of a deployment that exists (the runtime fixture made its database)."""
    return {f"GEOTARGET_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}


def run(env, *args):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["report"], "give exactly one of offer_id, geofence_id or merchant_id"),
        (["report", "--offer", "off_1", "--merchant", "mer_1"], "give exactly one of"),
        (["report", "--offer", "off_nope"], "no offer 'off_nope'"),
        (["report", "--merchant", "mer_x", "--from", "2026-13-01"], "'2026-13-01' is not a day as YYYY-MM-DD"),
    ],
)
def test_a_report_asked_wrongly_is_one_line_and_exit_2(env, args, says):
    done = run(env, *args)
    assert done.exit_code == 2, done.output
    assert says in " ".join(done.output.split()) and "Traceback" not in done.output


def test_a_backwards_window_is_one_line(env, cafe):
    done = run(env, "report", "--merchant", cafe.id, "--from", "2026-11-20", "--to", "2026-11-01")
    assert done.exit_code == 2 and "error: 'to' is before 'from' (to)" in done.output


def test_importing_for_a_merchant_that_does_not_exist_is_one_line(env, tmp_path):
    path = tmp_path / "fences.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [ALFAMA_CAFE]}))
    done = run(env, "fences", "import", str(path), "--merchant", "mer_nope")
    assert done.exit_code == 2 and "no merchant 'mer_nope'" in done.output and "Traceback" not in done.output


def test_rejected_fences_are_grouped_by_problem(env, client, tmp_path):
    from tests.conftest import ADMIN

    created = client.post("/v1/merchants", json={"name": "Importer"}, headers=ADMIN).json()
    merchant, headers = created["id"], {"Authorization": f"Bearer {created['api_key']}"}
    point = {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-9.13, 38.71]}}
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [point] * 30 + [ALFAMA_CAFE]}))
    done = run(env, "fences", "import", str(path), "--merchant", merchant)
    assert done.exit_code == 1
    assert "1 fence(s) imported, 0 already stored, 30 rejected" in done.output
    assert done.output.count("radius_m") == 1 and "30" in done.output  # one row for the 30 of them

    again = run(env, "fences", "import", str(path), "--merchant", merchant, "--radius-m", "40")
    assert again.exit_code == 0 and "30 fence(s) imported, 1 already stored, 0 rejected" in again.output
    fences = client.get("/v1/geofences", headers=headers).json()["features"]
    assert [f["properties"]["radius_m"] for f in fences if f["geometry"]["type"] == "Point"] == [40] * 30


def test_a_report_from_a_folder_without_a_deployment_refuses_and_creates_nothing(env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    moved = {**env, "GEOTARGET_DATA_DIR": str(elsewhere)}
    moved.pop("GEOTARGET_DATABASE_URL", None)
    done = run(moved, "report", "--merchant", "mer_x")
    assert done.exit_code == 2 and "no geotarget database in" in done.output and str(elsewhere) in done.output
    assert not (elsewhere / "geotarget.db").exists()


def test_a_piped_report_table_is_not_cut_and_names_its_scope(env, client, cafe):
    done = run(env, "report", "--merchant", cafe.id)
    assert done.exit_code == 0, done.output
    assert f"merchant_id={cafe.id}" in done.output and "{" not in done.output
    assert max(len(line) for line in done.output.splitlines()) > 80  # the whole table, not 80 columns
    html = run(env, "report", "--merchant", cafe.id, "--format", "html")
    assert f"<title>reach of merchant_id={cafe.id}</title>" in html.output and "&#x27;" not in html.output


def test_demo_help_reads_as_text():
    done = CliRunner().invoke(cli, ["demo", "--help"])
    assert "serve --demo" in done.output and "``" not in done.output


def test_keys_are_listed_rotated_and_revoked_from_the_shell(env, client, cafe):
    from tests.conftest import ADMIN

    listed = run(env, "keys", "list")
    assert listed.exit_code == 0 and cafe.id in listed.output and cafe.key not in listed.output
    (key_id,) = [k["id"] for k in client.get("/v1/keys", headers=ADMIN).json()["keys"]]

    rotated = run(env, "keys", "rotate", key_id, "--grace-s", "0")
    assert rotated.exit_code == 0, rotated.output
    new_key = next(w for w in rotated.output.split() if w.startswith("gt_merchant_"))
    assert client.get("/v1/geofences", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200

    assert run(env, "keys", "revoke", key_id).exit_code == 0
    eventually(
        lambda: client.get("/v1/geofences", headers={"Authorization": f"Bearer {new_key}"}).status_code == 401, 1
    )
    unknown = run(env, "keys", "revoke", "key_nope")
    assert unknown.exit_code == 2 and "no key 'key_nope'" in unknown.output
    merchants = run(env, "merchants", "list")
    assert merchants.exit_code == 0 and cafe.id in merchants.output


def test_serving_on_a_redis_cluster_that_does_not_answer_is_one_line(tmp_path):
    from tests.servers import free_port

    env = {"GEOTARGET_DATA_DIR": str(tmp_path), "GEOTARGET_REDIS_URL": f"redis+cluster://127.0.0.1:{free_port()}"}
    done = run(env, "serve")
    assert done.exit_code == 2 and "does not answer" in done.output and "Traceback" not in done.output
