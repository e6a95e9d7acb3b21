"""The model state the compiled C shows: ``struct vmballoon`` and its page lists read from
the C, with the environment and where inside the driver the state is.  One builder for
the C's views (:mod:`vmballoon.apps.cview`) and the C trace checker
(:mod:`vmballoon.apps.ctrace`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vmballoon.core.env import Env
from vmballoon.core.variants import Variant
from vmballoon.model import listed as ls
from vmballoon.model.plist import PList
from vmballoon.model.state import EMPTY_LOOP, Driver, Loc, Loop, State

PageLists = tuple[PList, PList, PList, PList]
"""The C's four page lists as the model keeps them: pages 4k, 2m, refused 4k, 2m."""


def state_of_c(
    fields: Mapping[str, Any],
    lists: PageLists,
    stats: tuple[int, ...],
    env: Env,
    variant: Variant,
    loc: Loc,
    loop: Loop = EMPTY_LOOP,
    entry: str = "",
) -> State:
    """The model state holding what the C showed: ``fields`` of ``struct vmballoon`` by the
    contract's names (:func:`vmballoon.harness.process.fields_of`, or a ``final`` object),
    its page lists, its statistics in the model's order, the environment; ``loc``,
    ``loop`` and ``entry`` say where inside the driver the state is."""
    doorbell = fields["doorbell"]
    n_refused = fields["n_refused"]
    drv = Driver(
        size=fields["size"],
        target=fields["target"],
        rate_alloc=fields["rate_alloc"],
        slow_allocation_cycles=fields["slow_allocation_cycles"],
        reset_required=fields["reset_required"],
        capabilities=fields["capabilities"],
        supported_page_sizes=fields["supported_page_sizes"],
        batch_max_pages=fields["batch_max_pages"],
        ops=fields["ops"],
        pages=(lists[0], lists[1]),
        refused=(lists[2], lists[3]),
        n_refused=(n_refused[0], n_refused[1]),
        batch_page=fields["batch_page"],
        page=fields["page"],
        doorbell=None if doorbell is None else (doorbell[0], doorbell[1]),
        warned=False,
        listed=ls.EMPTY,
    )
    return State(loc, drv, loop, stats, env, variant, entry)


__all__ = ["PageLists", "state_of_c"]
