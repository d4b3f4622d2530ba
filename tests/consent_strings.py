"""Consent strings built bit by bit from the IAB specifications, for tests: a TCF v2 core segment (the field
order of the TCF v2.2 "TC String" format) and GPP strings with a US Privacy or US National section. Production
code only decodes (with ``iab_tcf``); these make the inputs a CMP would."""

from __future__ import annotations

import base64
from collections.abc import Iterable


def _pack(bits: str) -> str:
    bits += "0" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _int(value: int, width: int) -> str:
    return format(value, f"0{width}b")


def _letters(text: str) -> str:
    return "".join(_int(ord(c) - ord("A"), 6) for c in text)


def _bitfield(chosen: Iterable[int], size: int) -> str:
    wanted = set(chosen)
    return "".join("1" if i in wanted else "0" for i in range(1, size + 1))


def tcf_v2(
    vendors: Iterable[int] = (),
    purposes: Iterable[int] = (),
    special_features: Iterable[int] = (),
    vendor_range: tuple[int, int] | None = None,
) -> str:
    """A TC string whose core segment consents to ``vendors``, ``purposes`` and ``special_features``; with
    ``vendor_range`` (first, last) the vendors are range-encoded as that one range instead."""
    vendors = sorted(set(vendors))
    most = max(vendors, default=0) if vendor_range is None else vendor_range[1]
    if vendor_range is None:
        vendor_section = "0" + _bitfield(vendors, most)  # a bit field
    else:  # ranges: how many, then each (a range?, first, last)
        vendor_section = "1" + _int(1, 12) + "1" + _int(vendor_range[0], 16) + _int(vendor_range[1], 16)
    deciseconds = 17_000_000_000  # 2023-11-14
    bits = "".join(
        [
            _int(2, 6),  # version
            _int(deciseconds, 36),  # created
            _int(deciseconds, 36),  # last updated
            _int(7, 12),  # CMP id
            _int(1, 12),  # CMP version
            _int(1, 6),  # consent screen
            _letters("EN"),
            _int(300, 12),  # vendor list version
            _int(4, 6),  # policy version
            "1",  # service specific
            "0",  # non-standard stacks
            _bitfield(special_features, 12),
            _bitfield(purposes, 24),
            _bitfield((), 24),  # legitimate interests
            "0",  # purpose one treatment
            _letters("PT"),
            _int(most, 16),
            vendor_section,
            _int(0, 16),  # legitimate-interest vendors: none
            "0",
            _int(0, 12),  # publisher restrictions: none
        ]
    )
    return _pack(bits)


def gpp(sections: dict[int, str]) -> str:
    """A GPP string: the header (type 3, version 1, section ids Fibonacci-coded) and the sections in id order."""
    ids = sorted(sections)
    ranges, last = [], 0
    for section in ids:
        ranges.append("0" + _fibonacci(section - last))
        last = section
    header = _int(3, 6) + _int(1, 6) + _int(len(ids), 12) + "".join(ranges)
    return "~".join([_pack(header), *(sections[i] for i in ids)])


def us_national(sale: int = 2, sharing: int = 2, targeted: int = 2) -> str:
    """A US National (section 7) core segment; 1 = opted out, 2 = did not opt out, 0 = not applicable."""
    notices = _int(1, 2) * 6
    return _pack(_int(1, 6) + notices + _int(sale, 2) + _int(sharing, 2) + _int(targeted, 2) + "0" * 40)


def _fibonacci(value: int) -> str:
    terms = [1, 2]
    while terms[-1] <= value:
        terms.append(terms[-1] + terms[-2])
    bits = ["0"] * len(terms)
    rest = value
    for i in reversed(range(len(terms))):
        if terms[i] <= rest:
            bits[i] = "1"
            rest -= terms[i]
    code = "".join(bits).rstrip("0")
    return code + "1"
