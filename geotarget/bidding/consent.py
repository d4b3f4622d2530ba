"""What a bid request's privacy signals allow: TCF v2 (decoded by ``iab_tcf``), the US Privacy string and GPP's
US sections. Pure.

Under GDPR (``regs.gdpr = 1``) we need our vendor's consent and purposes 1 (store and read on the device),
3 (build a personalised profile) and 4 (select personalised ads): without them there is no bid. Precise
geolocation (special feature 1) decides whether the position may be used as it is or only coarsely. A US
opt-out of sale, sharing or targeted advertising makes the request limit-ad-tracking (``lmt``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from iab_tcf import decode_v2

NEEDED_PURPOSES = (1, 3, 4)
PRECISE_GEOLOCATION = 1  # TCF special feature 1
NOT_ALLOWED = 0  # TCF publisher restriction type: the purpose is not allowed for the vendor

Refusal = Literal["consent_missing", "consent_invalid", "vendor_denied", "purpose_denied"]


@dataclass(frozen=True)
class Consent:
    refused: Refusal | None = None  # no bid at all
    precise: bool = True  # the position may be used as given (else coarsened)
    opted_out: bool = False  # a US opt-out: treat as limit-ad-tracking


def gdpr_applies(*signals: int | None) -> bool:
    """Whether GDPR applies, read the safe way: any signal other than 0 (``regs.gdpr`` 2, or ``regs.gdpr`` 0 with
    2.5's ``regs.ext.gdpr`` 1) means it does; none at all means it does not.

    >>> gdpr_applies(0, 1), gdpr_applies(2), gdpr_applies(None, None), gdpr_applies(0, None)
    (True, True, False, False)
    """
    return any(signal is not None and signal != 0 for signal in signals)


def gdpr_consent(applies: bool, consent: str | None, vendor_id: int) -> Consent:
    """The TCF decision for ``vendor_id``; GDPR not applying needs no string. Vendor id 0 is no vendor (the
    default until a deployment registers with the IAB): never a bid under GDPR, whatever a string's range says."""
    if not applies:
        return Consent()
    if vendor_id < 1:
        return Consent(refused="vendor_denied")
    if not consent:
        return Consent(refused="consent_missing")
    try:
        tcf = decode_v2(consent)
        if tcf.version != 2:
            raise ValueError(f"TCF version {tcf.version}")
        vendor = tcf.is_vendor_allowed(vendor_id)
        purposes = all(_purpose(tcf, p, vendor_id) for p in NEEDED_PURPOSES)
        precise = bool(tcf.special_features_optin.get(PRECISE_GEOLOCATION, False))
    except Exception:  # the library raises whatever its bit reader meets: a string we cannot read is no consent
        return Consent(refused="consent_invalid")
    if not vendor:
        return Consent(refused="vendor_denied")
    if not purposes:
        return Consent(refused="purpose_denied")
    return Consent(precise=precise)


def _purpose(tcf: object, purpose: int, vendor_id: int) -> bool:
    restriction = tcf.get_restriction(vendor_id, purpose)  # type: ignore[attr-defined]
    if restriction is not None and restriction.restriction_type == NOT_ALLOWED:
        return False
    return bool(tcf.is_purpose_allowed(purpose))  # type: ignore[attr-defined]


def us_privacy_opt_out(us_privacy: str | None) -> bool:
    """CCPA's ``1YYN`` form: the third character ``Y`` is an opt-out of sale."""
    return bool(us_privacy) and len(us_privacy or "") == 4 and us_privacy[2].upper() == "Y"  # type: ignore[index]


# GPP sections we read, and where their opt-out fields start (2 bits each, 1 = opted out), from each section's
# specification: US national (7): sale, sharing, targeted advertising; California (8): sale, sharing.
US_PRIVACY_SECTION = 6
_OPT_OUT_BITS = {7: (18, 20, 22), 8: (12, 14)}
_US_STATES = range(9, 24)  # other US state sections: not decoded here, honoured as an opt-out


def gpp_opt_out(gpp: str | None, applicable: list[int] | None) -> bool:
    """Whether a GPP string's applicable US section opts out of sale, sharing or targeted advertising. A string
    we cannot read, or a US state section we do not decode, counts as an opt-out (the safe reading)."""
    if not gpp:
        return False
    try:
        parts = gpp.split("~")
        ids = _section_ids(_bits(parts[0]))
        sections = dict(zip(ids, parts[1:], strict=True))
    except ValueError:
        return True
    wanted = [i for i in ids if applicable is None or i in applicable]
    for section in wanted:
        if section == US_PRIVACY_SECTION and us_privacy_opt_out(sections[section]):
            return True
        if section in _OPT_OUT_BITS:
            bits = _bits(sections[section].split(".")[0])
            if any(bits[i : i + 2] == "01" for i in _OPT_OUT_BITS[section]):
                return True
        if section in _US_STATES:
            return True
    return False


def _bits(segment: str) -> str:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return "".join(f"{b:08b}" for b in raw)


def _section_ids(header: str) -> list[int]:
    """GPP header: type (6 bits, 3), version (6), then the section ids as a Fibonacci-coded range."""
    if int(header[:6], 2) != 3:
        raise ValueError("not a GPP header")
    count, pos = int(header[12:24], 2), 24
    ids: list[int] = []
    last = 0
    for _ in range(count):
        is_range = header[pos] == "1"
        start, pos = _fibonacci(header, pos + 1)
        first = last + start
        if is_range:
            end, pos = _fibonacci(header, pos)
            ids += range(first, first + end + 1)
            last = first + end
        else:
            ids.append(first)
            last = first
    return ids


def _fibonacci(bits: str, pos: int) -> tuple[int, int]:
    """One Fibonacci-coded integer (Zeckendorf terms 1, 2, 3, 5, ... least first; a code never holds two 1s in a
    row, so the first ``11`` ends it) and the position after it."""
    value, term, following, previous = 0, 1, 2, "0"
    while pos < len(bits):
        bit = bits[pos]
        if bit == "1" and previous == "1":
            return value, pos + 1
        if bit == "1":
            value += term
        term, following, previous, pos = following, term + following, bit, pos + 1
    raise ValueError("unterminated Fibonacci code")
