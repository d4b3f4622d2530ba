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

    def __reduce__(self) -> tuple[type[FenceError], tuple[str, str, str | None]]:
        """Keeps code and field when the error crosses a process boundary (fences are checked in a pool)."""
        return (type(self), (self.code, self.message, self.field))

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}
