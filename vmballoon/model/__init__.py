"""The executable model of vmw_balloon.c: pure transitions over an immutable state.

No z3, no hypothesis: plain Python.  See :mod:`model.state` for the state,
:mod:`model.transitions` for the transitions and :mod:`model.machine` for entry
points and replay.
"""

from vmballoon.model.machine import (
    enter,
    event_log,
    final_json,
    replay,
    run_scenario,
    run_to_idle,
    step,
)
from vmballoon.model.state import Loc, State, initial_state

__all__ = [
    "Loc",
    "State",
    "enter",
    "event_log",
    "final_json",
    "initial_state",
    "replay",
    "run_scenario",
    "run_to_idle",
    "step",
]
