"""The OpenAPI document as a client generator reads it: every operation has a short, stable snake_case id (what
generated functions are called), and the links between operations point at ids that exist."""

from __future__ import annotations

import re

from api.main import create_app
from geotarget.settings import Settings

OPERATIONS = {
    "bid", "bid_notice", "create_app_key", "create_audience", "create_fence", "create_fences_in_bulk",
    "create_merchant", "create_offer", "create_webhook", "delete_audience", "delete_fence", "delete_offer",
    "delete_webhook", "erase_device", "fence_cells", "fences_containing", "get_audience", "get_fence", "get_offer",
    "explain_offers", "healthz", "heatmap_report", "offer_poster_qr",
    "lift_report", "list_audiences", "list_deliveries", "list_fences", "list_keys", "list_merchants", "list_offers",
    "list_webhooks", "metrics", "nearby", "patch_fence", "patch_merchant", "patch_offer", "reach_report", "readyz",
    "redeem", "refresh_audience", "report_scopes", "revoke_key", "rotate_key", "rotate_own_key", "send_interactions",
    "send_pings", "test_webhook", "variants_report",
}  # fmt: skip


def operations(document):
    return [op for ops in document["paths"].values() for op in ops.values() if isinstance(op, dict)]


def test_every_operation_has_a_clean_stable_id(tmp_path):
    document = create_app(Settings(data_dir=tmp_path)).openapi()
    ids = [op["operationId"] for op in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", i) and "_v1_" not in i for i in ids)
    assert set(ids) == OPERATIONS  # renaming one renames a generated client's function: change this list on purpose


def test_links_name_operations_that_exist(tmp_path):
    document = create_app(Settings(data_dir=tmp_path)).openapi()
    ids = {op["operationId"] for op in operations(document)}
    linked = {
        link["operationId"]
        for op in operations(document)
        for answer in op.get("responses", {}).values()
        for link in answer.get("links", {}).values()
    }
    assert linked and linked <= ids
