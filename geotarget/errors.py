"""Domain errors. ``api`` turns them into HTTP answers; nothing here knows about status codes.

GeotargetError
├── NotFound       the thing does not exist, or belongs to someone else (never say which)
├── Conflict       the request clashes with stored state
├── InvalidInput   a value breaks a rule
└── Busy           too much CPU-heavy work is already queued; try again shortly
    └── TooManyAtOnce  this caller already has as much of a slow thing going as it may; try again shortly

A fence's geometry errors stay ``geofences.FenceError`` (with a precise code such as ``too_many_vertices``);
the API answers them like ``InvalidInput``.
"""

from __future__ import annotations


class GeotargetError(Exception):
    code = "error"

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def __reduce__(self) -> tuple[type[GeotargetError], tuple[str, str | None, str]]:
        """Keeps field and code when the error crosses a process boundary."""
        return (type(self), (self.message, self.field, self.code))


class NotFound(GeotargetError):
    code = "not_found"


class Conflict(GeotargetError):
    code = "conflict"


class InvalidInput(GeotargetError):
    code = "invalid"


class Busy(GeotargetError):
    code = "busy"


class TooManyAtOnce(Busy):
    code = "rate_limited"
