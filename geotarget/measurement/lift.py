"""Holdout lift: did showing the offer cause visits? The exposed arm's visit rate against the control arm's
(devices held out by ``in_holdout``), with Newcombe's hybrid score interval for the difference and a two-sided
pooled z-test. Pure: the counts come from ``store/sql/lift.sql``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def in_holdout(offer_id: str, device_key: str, holdout_pct: int) -> bool:
    """The control group, stable per (offer, device) and the same in every worker.

    >>> in_holdout("off_1", "dev", 0), in_holdout("off_1", "dev", 100)
    (False, True)
    """
    digest = hashlib.sha256(f"{offer_id}:{device_key}".encode()).hexdigest()
    return int(digest[:8], 16) % 10_000 < holdout_pct * 100


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for one proportion (it stays inside [0, 1] and behaves at 0 and n)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p1 − p2.

    >>> [round(v, 4) for v in newcombe(56, 70, 48, 80)]  # Newcombe (1998), table II, example (a)
    [0.0524, 0.3339]
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lower, upper


def p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided pooled two-proportion z-test."""
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / spread
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Arm:
    devices: int
    visitors: int

    @property
    def rate(self) -> float | None:
        return self.visitors / self.devices if self.devices else None


@dataclass(frozen=True)
class Lift:
    exposed: Arm
    control: Arm
    lift_abs: float | None
    lift_rel: float | None
    ci95: tuple[float, float] | None
    p_value: float | None


def lift(exposed: Arm, control: Arm) -> Lift:
    """Absolute lift (exposed rate − control rate), relative lift (÷ control rate), 95 % interval, p-value."""
    if not exposed.devices or not control.devices:
        return Lift(exposed, control, None, None, None, None)
    e, c = exposed.visitors / exposed.devices, control.visitors / control.devices
    interval = newcombe(exposed.visitors, exposed.devices, control.visitors, control.devices)
    return Lift(
        exposed,
        control,
        e - c,
        (e - c) / c if c else None,
        interval,
        p_value(exposed.visitors, exposed.devices, control.visitors, control.devices),
    )


NO_HOLDOUT = "no holdout: give the offer a holdout_pct to measure lift"


def in_words(result: Lift, holdout_pct: int) -> str:
    """What an ad-ops reader should take from it (the one wording the API and the dashboard show).

    >>> in_words(Lift(Arm(1000, 130), Arm(250, 25), 0.03, 0.3, (0.012, 0.05), 0.01), 20)
    '+3.0 visits per 100 reached (95 % CI +1.2 to +5.0)'
    >>> in_words(Lift(Arm(1000, 130), Arm(0, 0), None, None, None, None), 0)
    'no holdout: give the offer a holdout_pct to measure lift'
    """
    if not holdout_pct:
        return NO_HOLDOUT
    if result.lift_abs is None or result.ci95 is None:
        return "not enough devices in both groups yet"
    low, high = result.ci95
    return f"{100 * result.lift_abs:+.1f} visits per 100 reached (95 % CI {100 * low:+.1f} to {100 * high:+.1f})"
