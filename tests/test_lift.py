"""Holdout lift is right: its 95 % interval covers the true effect in at least 92 % of 200 generated data sets
(seeded, so the test never flakes), with a known effect and with none; and the holdout is the same split in
every worker."""

from __future__ import annotations

import random

from geotarget.measurement.lift import Arm, in_holdout, in_words, lift

DATA_SETS = 200


def generated(seed: int, base: float, effect: float, devices: int, holdout_pct: int) -> tuple[Arm, Arm]:
    """A population split by the real holdout rule; each device visits with the base rate, plus ``effect``
    when exposed."""
    rng = random.Random(seed)
    exposed = control = exposed_visitors = control_visitors = 0
    for n in range(devices):
        if in_holdout(f"off_{seed}", f"device-{seed}-{n}", holdout_pct):
            control += 1
            control_visitors += rng.random() < base
        else:
            exposed += 1
            exposed_visitors += rng.random() < base + effect
    return Arm(exposed, exposed_visitors), Arm(control, control_visitors)


def test_the_interval_covers_a_known_lift_in_at_least_92_percent_of_data_sets():
    covered = 0
    for seed in range(DATA_SETS):
        exposed, control = generated(seed, base=0.10, effect=0.03, devices=3_000, holdout_pct=20)
        low, high = lift(exposed, control).ci95  # type: ignore[misc]
        covered += low <= 0.03 <= high
    assert covered >= 184, covered


def test_with_no_effect_the_interval_covers_zero_in_at_least_92_percent_of_data_sets():
    covered = 0
    for seed in range(DATA_SETS):
        exposed, control = generated(1_000 + seed, base=0.08, effect=0.0, devices=3_000, holdout_pct=20)
        low, high = lift(exposed, control).ci95  # type: ignore[misc]
        covered += low <= 0.0 <= high
    assert covered >= 184, covered


def test_the_holdout_takes_the_share_asked_for_and_is_stable():
    held = sum(in_holdout("off_latte", f"device-{n}", 20) for n in range(20_000))
    assert 3_800 < held < 4_200
    assert all(
        in_holdout("off_latte", f"device-{n}", 20) == in_holdout("off_latte", f"device-{n}", 20) for n in range(100)
    )
    assert not any(in_holdout("off_latte", f"device-{n}", 0) for n in range(1_000))


def test_a_strong_effect_reads_as_significant_and_in_plain_words():
    result = lift(Arm(2_000, 400), Arm(500, 50))
    assert result.lift_abs is not None and abs(result.lift_abs - 0.10) < 1e-12
    assert result.lift_rel is not None and abs(result.lift_rel - 1.0) < 1e-12
    assert result.p_value is not None and result.p_value < 1e-6
    assert in_words(result, 20).startswith("+10.0 visits per 100 reached (95 % CI +")
    assert lift(Arm(100, 10), Arm(0, 0)).ci95 is None
