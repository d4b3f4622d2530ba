"""QR codes drawn by segno (ISO/IEC 18004): the poster's link and the code shown at the till."""

from __future__ import annotations

import io
from typing import Literal

import segno

QrFormat = Literal["svg", "png"]
MEDIA_TYPES: dict[str, str] = {"svg": "image/svg+xml", "png": "image/png"}


def qr_image(text: str, kind: QrFormat, scale: int = 8) -> bytes:
    """``text`` as a QR code image: medium error correction (a poster survives a scratch), the standard quiet
    zone of four modules, ``scale`` pixels (or SVG units) a module.

    >>> qr_image("LATTE2", "svg", 2).startswith(b"<svg")
    True
    """
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, border=4, xmldecl=False, svgclass=None, lineclass=None)
    else:
        code.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_modules(text: str) -> int:
    """How many modules wide ``text``'s code is, quiet zone included: what a pixel size is divided by."""
    width, _ = segno.make(text, error="m", micro=False).symbol_size(scale=1, border=4)
    return int(width)
