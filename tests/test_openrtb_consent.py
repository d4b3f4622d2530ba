"""Consent decides whether and how we bid: the whole matrix of GDPR x TCF consent x lmt x US Privacy x COPPA,
each case with the decision it must get, and GPP's US sections. Our TCF vendor id here is 755."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

from tests.conftest import make_settings
from tests.consent_strings import gpp, tcf_v2, us_national
from tests.test_openrtb import LISBON, bid_request, place, post_bid, stream_events

VENDOR = 755
CONSENTS = {
    "granted": tcf_v2([VENDOR], [1, 3, 4], [1]),
    "missing": None,
    "vendor_denied": tcf_v2([VENDOR + 1], [1, 3, 4], [1]),
    "special_feature_denied": tcf_v2([VENDOR], [1, 3, 4], []),
}


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, tcf_vendor_id=VENDOR)


@pytest.fixture
def offers(client, cafe) -> dict[str, str]:
    """At the device's position: an inside-only offer (wins a precise position) and one for the neighbourhood,
    wide enough to reach a position coarsened to its ~1.2 km H3 cell's centre."""
    inside = place(client, cafe, *LISBON, title="inside only", nearby_m=0, priority=90)
    nearby = place(client, cafe, *LISBON, title="neighbourhood", nearby_m=2000, priority=10)
    return {inside["id"]: "precise", nearby["id"]: "coarse"}


def expected(gdpr: int, consent: str, lmt: int, us_privacy: str | None, coppa: int) -> str:
    """The rule: COPPA never bids; under GDPR, no consent string or no vendor consent is no bid and no precise-
    geolocation consent is a coarse position; lmt or a US opt-out is a bid that links nothing to the device."""
    if coppa:
        return "no bid"
    if gdpr and consent in ("missing", "vendor_denied"):
        return "no bid"
    position = "coarse" if gdpr and consent == "special_feature_denied" else "precise"
    unlinked = lmt or (us_privacy or "").upper()[2:3] == "Y"
    return f"{position} bid, {'unlinked' if unlinked else 'linked'}"


def test_the_consent_matrix(client, runtime, exchange, offers):
    wrong = []
    cases = list(product((0, 1), CONSENTS, (0, 1), (None, "1YNN", "1YYN"), (0, 1)))
    for n, (gdpr, consent, lmt, us_privacy, coppa) in enumerate(cases):
        request = bid_request(device=f"matrix-{n}")
        request["device"]["lmt"] = lmt
        request["regs"] = {"gdpr": gdpr, "coppa": coppa} | ({"us_privacy": us_privacy} if us_privacy else {})
        if CONSENTS[consent] is not None:
            request["user"] = {"consent": CONSENTS[consent]}
        response = post_bid(client, exchange, request)
        if response.status_code == 204:
            got = "no bid"
        else:
            bid = response.json()["seatbid"][0]["bid"][0]
            [event] = [e for e in stream_events(runtime, "bid") if e["event_id"] == f"b:{bid['id']}"]
            got = f"{offers[bid['cid']]} bid, {'linked' if event['device_key'] else 'unlinked'}"
        want = expected(gdpr, consent, lmt, us_privacy, coppa)
        if got != want:
            wrong.append(f"gdpr={gdpr} consent={consent} lmt={lmt} us_privacy={us_privacy} coppa={coppa}: {got}")
    assert len(cases) == 96 and not wrong, "\n".join(wrong)


def test_the_2_5_ext_spellings_are_read_too(client, exchange, offers):
    request = bid_request(regs={"ext": {"gdpr": 1}}, user={"ext": {"consent": CONSENTS["vendor_denied"]}})
    assert post_bid(client, exchange, request).status_code == 204
    request["user"]["ext"]["consent"] = CONSENTS["granted"]
    assert post_bid(client, exchange, request).status_code == 200


def test_an_unreadable_consent_string_under_gdpr_is_no_consent(client, exchange, offers):
    request = bid_request(regs={"gdpr": 1}, user={"consent": "not-a-tc-string!"})
    assert post_bid(client, exchange, request).status_code == 204


@pytest.mark.parametrize(
    ("gpp_string", "applicable", "linked"),
    [
        (gpp({7: us_national(sale=1)}), [7], False),  # US National: opted out of sale
        (gpp({7: us_national(sharing=1)}), [7], False),
        (gpp({7: us_national(targeted=1)}), [7], False),
        (gpp({7: us_national()}), [7], True),  # no opt-out
        (gpp({6: "1YYN"}), [6], False),  # the US Privacy string inside GPP
        (gpp({6: "1YNN"}), [6], True),
        (gpp({6: "1YYN"}), [2], True),  # not an applicable section
        (gpp({9: "BAAAAAA"}), None, False),  # a state section we do not decode: the safe reading
        ("not~gpp", None, False),  # unreadable: the safe reading
    ],
)
def test_gpp_us_opt_outs_are_limit_ad_tracking(client, runtime, exchange, offers, gpp_string, applicable, linked):
    request = bid_request(regs={"gpp": gpp_string} | ({"gpp_sid": applicable} if applicable else {}))
    bid = post_bid(client, exchange, request).json()["seatbid"][0]["bid"][0]
    [event] = [e for e in stream_events(runtime, "bid") if e["event_id"] == f"b:{bid['id']}"]
    assert bool(event["device_key"]) is linked


def test_vendor_id_0_never_bids_under_gdpr_whatever_a_range_says(client, runtime, exchange, offers):
    """The reported bypass: a TC string whose vendor range starts at 0 consented for the unregistered default."""
    runtime.bidder.rules = replace(runtime.bidder.rules, vendor_id=0)  # GEOTARGET_TCF_VENDOR_ID unset
    everyone = tcf_v2([], [1, 3, 4], [1], vendor_range=(0, 65_535))
    assert post_bid(client, exchange, bid_request(regs={"gdpr": 1}, user={"consent": everyone})).status_code == 204
    assert post_bid(client, exchange, bid_request(regs={"gdpr": 0})).status_code == 200


@pytest.mark.parametrize(
    "regs",
    [{"gdpr": 2}, {"gdpr": 0, "ext": {"gdpr": 1}}, {"gdpr": 7}, {"ext": {"gdpr": 3}}],
    ids=["gdpr 2", "gdpr 0 but ext.gdpr 1", "gdpr 7", "ext.gdpr 3"],
)
def test_odd_gdpr_signals_are_read_as_gdpr_applying(client, exchange, offers, regs):
    denied = bid_request(regs=regs, user={"consent": CONSENTS["vendor_denied"]})
    assert post_bid(client, exchange, denied).status_code == 204
    granted = bid_request(regs=regs, user={"consent": CONSENTS["granted"]})
    assert post_bid(client, exchange, granted).status_code == 200
