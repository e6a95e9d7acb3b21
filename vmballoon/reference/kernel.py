"""The kernel services ``vmw_balloon.c`` calls, on top of the shared immutable :class:`Env`.

:class:`Kernel` is the mutable world outside ``struct vmballoon``: the
environment (hypervisor port, page allocator, VMCI, event log), which it
keeps in a field and replaces after every operation; the ``lru`` fields of
all ``struct page``; and the static "already warned" flag of
``WARN_ON_ONCE`` at line 679.
"""

from __future__ import annotations

from vmballoon.core.env import Env
from vmballoon.core.scenario import Response
from vmballoon.reference.klist import Lru, Oops, Page, page_to_pfn


class Kernel:
    """Everything the driver reaches through kernel APIs rather than through ``b``."""

    __slots__ = ("env", "lru", "warned")

    def __init__(self, env: Env) -> None:
        self.env = env
        self.lru = Lru()
        self.warned = False

    def backdoor(
        self, cmd: int, arg1: int, arg2: int, batch: tuple[int, ...] | None = None
    ) -> Response:
        """The ``inl`` of ``VMWARE_BALLOON_CMD`` (lines 200-219): one scripted answer.

        ``batch``: the batch page's entries ``0 .. arg2-1`` for a batched command,
        which a cooperative host reads when ``arg1`` names the batch page.
        """
        response, self.env = self.env.hv(cmd, arg1, arg2, batch)
        return response

    def alloc_pages(self, order: int, gfp: str) -> Page:
        """``alloc_pages(gfp, order)`` / ``alloc_page(gfp)``: a page, or NULL."""
        page, self.env = self.env.alloc(order, gfp)
        return page

    def free_pages(self, page: Page, order: int) -> None:
        """``__free_pages(page, order)`` / ``__free_page(page)``; NULL is ``null_deref``."""
        if page is None:
            raise Oops("null_deref", None)
        self.env = self.env.free(page_to_pfn(page), order)

    def vmci_doorbell_create(self) -> tuple[int, int] | None:
        """``vmci_doorbell_create``: the new handle, or ``None`` when it fails."""
        handle, self.env = self.env.vmci_create()
        return handle

    def vmci_doorbell_destroy(self) -> None:
        """``vmci_doorbell_destroy``."""
        self.env = self.env.vmci_destroy()

    def warn_on_once(self, condition: bool) -> bool:
        """``WARN_ON_ONCE(condition)``: fault ``warn`` the first time only; returns it."""
        if condition and not self.warned:
            self.warned = True
            self.env = self.env.fault("warn", None)
        return condition
