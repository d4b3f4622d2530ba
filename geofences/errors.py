"""Errors raised for geometry that cannot become a fence.

``FenceError`` is the only exception this package raises on purpose. It carries a machine-readable ``code``,
a sentence for people, and ``field``: a JSON path into the submitted document (``geometry.coordinates[0][3]``)
so an editor can point at the offending ring or vertex.
"""

from __future__ import annotations


class FenceError(ValueError):
    """A submitted fence breaks a rule; nothing was stored."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}
