"""Wins that come after their bid's hold ended: they still count (the device saw the ad, the spend is real),
and however late they come a cap ends at most one over its limit (docs/openrtb.md, "Holds and notices")."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from geotarget.bidding.bidder import LATE_GRACE_S
from geotarget.settings import Settings
from tests.conftest import make_settings
from tests.test_openrtb import LISBON, bid_request, notice, only_bid, place, post_bid, stream_events


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, database_url: str) -> Settings:
    return make_settings(tmp_path, redis_url, database_url, bid_min_hold_s=1)  # holds of a second: a quick test


def bid_once(client, exchange) -> dict | None:
    request = bid_request()
    request["imp"][0]["exp"] = 1
    response = post_bid(client, exchange, request)
    return only_bid(response) if response.status_code == 200 and "seatbid" in response.json() else None


def test_the_end_of_the_hold_frees_the_slot_and_a_late_win_still_counts(client, runtime, cafe, exchange):
    place(client, cafe, *LISBON, caps={"per_device_per_day": 1})
    first = bid_once(client, exchange)
    assert first is not None and first["exp"] == 1
    time.sleep(1.1)
    second = bid_once(client, exchange)  # the first hold ended: its slot is free
    assert second is not None
    assert notice(client, first["nurl"], "1.0").json()["outcome"] == "late"
    assert notice(client, second["lurl"]).json()["outcome"] == "settled"
    assert len(stream_events(runtime, "impression")) == 1


@pytest.mark.slow
def test_late_wins_sent_on_purpose_take_a_cap_one_over_at_most(client, runtime, cafe, exchange):
    """An exchange that lets every hold run out before it sends the win: one bid a hold's length apart, all
    won late. A cap of 3 a day ends at 4 at most, never at one per bid."""
    place(client, cafe, *LISBON, caps={"per_device_per_day": 3})
    bids = []
    for _ in range(8):
        made = bid_once(client, exchange)
        if made is not None:
            bids.append(made)
        time.sleep(1.05)
    outcomes = [notice(client, bid["nurl"], "1.0").json()["outcome"] for bid in bids]

    assert len(bids) == 4 and outcomes.count("late") == 4
    assert len(stream_events(runtime, "impression")) == 4
    assert bid_once(client, exchange) is None  # counted: no room until tomorrow


@pytest.mark.slow
def test_a_loss_frees_a_late_slot_entirely(client, cafe, exchange):
    place(client, cafe, *LISBON, caps={"per_device_per_day": 1})
    first = bid_once(client, exchange)
    time.sleep(1.1)
    second = bid_once(client, exchange)
    assert first is not None and second is not None
    time.sleep(1.1)
    assert bid_once(client, exchange) is None  # two outcomes unknown: one may be a win, one more would be over
    assert notice(client, first["lurl"]).json()["outcome"] == "late"
    assert bid_once(client, exchange) is not None


def test_the_lua_grace_for_late_notices_is_the_bidders():
    lua = (Path(__file__).resolve().parents[1] / "geotarget" / "store" / "lua" / "reserve.lua").read_text()
    (late_ms,) = re.findall(r"local LATE_NOTICE_MS = (\d+)", lua)
    assert int(late_ms) == LATE_GRACE_S * 1000
