"""The OpenRTB 2.6 BidResponse (sections 4.2.1-4.2.3 of the specification) and the Native 1.2 response
(section 5), as JSON Schemas: every field the specifications define, with its type, and nothing else outside
``ext``, so a misspelt or mistyped field fails validation."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

_STR, _INT, _NUM, _OBJ = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "object"}
_STRS, _INTS = {"type": "array", "items": _STR}, {"type": "array", "items": _INT}

BID = {
    "type": "object",
    "required": ["id", "impid", "price"],
    "additionalProperties": False,
    "properties": {
        "id": _STR, "impid": _STR, "price": _NUM, "nurl": _STR, "burl": _STR, "lurl": _STR, "adm": _STR,
        "adid": _STR, "adomain": _STRS, "bundle": _STR, "iurl": _STR, "cid": _STR, "crid": _STR, "tactic": _STR,
        "cattax": _INT, "cat": _STRS, "attr": _INTS, "apis": _INTS, "api": _INT, "protocol": _INT,
        "qagmediarating": _INT, "language": _STR, "langb": _STR, "dealid": _STR, "w": _INT, "h": _INT,
        "wratio": _INT, "hratio": _INT, "exp": _INT, "dur": _INT, "mtype": {"enum": [1, 2, 3, 4]},
        "slotinpod": _INT, "ext": _OBJ,
    },
}  # fmt: skip
BID_RESPONSE = {
    "type": "object",
    "required": ["id"],
    "additionalProperties": False,
    "properties": {
        "id": _STR,
        "seatbid": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["bid"],
                "additionalProperties": False,
                "properties": {
                    "bid": {"type": "array", "minItems": 1, "items": BID},
                    "seat": _STR,
                    "group": {"enum": [0, 1]},
                    "ext": _OBJ,
                },
            },
        },
        "bidid": _STR,
        "cur": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "customdata": _STR,
        "nbr": _INT,
        "ext": _OBJ,
    },
}
NATIVE_RESPONSE = {
    "type": "object",
    "required": ["link"],
    "additionalProperties": False,
    "properties": {
        "ver": _STR,
        "assets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "additionalProperties": False,
                "properties": {
                    "id": _INT,
                    "required": {"enum": [0, 1]},
                    "title": {"type": "object", "required": ["text"], "properties": {"text": _STR, "len": _INT}},
                    "img": {"type": "object", "required": ["url"], "properties": {"url": _STR, "w": _INT, "h": _INT}},
                    "data": {"type": "object", "required": ["value"], "properties": {"value": _STR, "len": _INT}},
                    "link": _OBJ,
                    "ext": _OBJ,
                },
            },
        },
        "assetsurl": _STR,
        "dcourl": _STR,
        "link": {"type": "object", "required": ["url"], "properties": {"url": _STR, "clicktrackers": _STRS}},
        "imptrackers": _STRS,
        "jstracker": _STR,
        "eventtrackers": {"type": "array", "items": _OBJ},
        "privacy": _STR,
        "ext": _OBJ,
    },
}


def check_bid_response(document: Any) -> None:
    """Raises ``jsonschema_rs.ValidationError`` naming the first field that breaks the 2.6 shape."""
    jsonschema_rs.validator_for(BID_RESPONSE).validate(document)


def check_native_response(document: Any) -> None:
    jsonschema_rs.validator_for(NATIVE_RESPONSE).validate(document)
