"""The parts of an OpenRTB 2.6 BidRequest a location bidder reads, as lenient pydantic models: anything else an
exchange sends is ignored, and a field we read with the wrong type makes the request invalid (``nbr`` 2).
2.5's ``ext`` spellings of the privacy fields (``regs.ext.gdpr``, ``user.ext.consent``) are read too."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Geo(_Lenient):
    lat: float | None = None
    lon: float | None = None
    type: int | None = None  # 1 GPS, 2 IP address, 3 user provided
    accuracy: float | None = Field(default=None, ge=0)  # metres
    lastfix: int | None = None  # seconds since the fix


class Device(_Lenient):
    geo: Geo | None = None
    ifa: str | None = None
    lmt: int = 0
    dnt: int = 0
    os: str | None = None
    language: str | None = None


class UserExt(_Lenient):
    consent: str | None = None


class User(_Lenient):
    id: str | None = None
    yob: int | None = None
    gender: str | None = None  # M, F, O
    geo: Geo | None = None
    consent: str | None = None
    ext: UserExt | None = None


class RegsExt(_Lenient):
    gdpr: int | None = None
    us_privacy: str | None = None


class Regs(_Lenient):
    coppa: int = 0
    gdpr: int | None = None
    us_privacy: str | None = None
    gpp: str | None = None
    gpp_sid: list[int] | None = None
    ext: RegsExt | None = None


class Format(_Lenient):
    w: int | None = None
    h: int | None = None


class Banner(_Lenient):
    w: int | None = None
    h: int | None = None
    format: list[Format] | None = None


class Native(_Lenient):
    request: str | dict[str, Any]  # Native 1.x request, as a JSON string (or, from some exchanges, an object)
    ver: str | None = None


class Imp(_Lenient):
    id: str = Field(min_length=1)
    banner: Banner | None = None
    native: Native | None = None
    bidfloor: float = Field(default=0.0, ge=0)
    bidfloorcur: str = "USD"
    exp: int | None = Field(default=None, ge=1)  # seconds a won impression may still be shown


class BidRequest(_Lenient):
    id: str = Field(min_length=1)
    imp: list[Imp] = Field(min_length=1)
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    cur: list[str] | None = None
    badv: list[str] | None = None  # advertiser domains the publisher blocks
    test: int = 0
