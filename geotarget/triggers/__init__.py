"""Triggers: where each device is (presence in fences: enter, dwell, exit) and what a change sets off."""
