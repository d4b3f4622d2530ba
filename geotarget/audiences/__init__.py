"""Audiences: behavioural segments built from visits (visitors, regulars, lapsed, dwellers of a merchant's fences,
including audience-only fences drawn around a competitor), refreshed from the event store and checked at serving
time in the cap reservation's one Redis call."""
