"""From a ping to the offers shown: schedules, targeting, ranking, cap rules, the matcher (all pure) and the
offer server that reserves caps and emits events through interfaces implemented in ``geotarget.store``."""
