"""Kernel doubly linked lists (``include/linux/list.h``), intrusive like the kernel's.

Every ``struct page`` has one ``lru`` field, so a page is on at most one list
at a time.  :class:`Lru` holds the ``lru.next`` / ``lru.prev`` pointers of all
pages and of the list heads in two dictionaries: a page is named by its PFN
(a non-negative integer), a list head by a negative key that no PFN can
have.  A page is "on a list" exactly when it has an entry in ``next``.

Operations cost O(1), so a balloon of millions of pages is cheap, and
``list_for_each_entry_safe`` can be written with the kernel's own cursor
(``pos`` and the saved ``n``), which matters when the loop body re-adds pages
at the head of the list it walks (``vmballoon_deflate``).

Misuse the kernel would crash on (with ``CONFIG_DEBUG_LIST``) raises
:class:`Oops`: adding a NULL page is ``null_deref``, adding a page that is
already on a list is ``list_corrupt``.
"""

from __future__ import annotations

from vmballoon.core.protocol import NULL_PFN


class Oops(Exception):
    """The guest kernel crashed: fault ``kind`` (``null_deref``, ``list_corrupt``) at ``pfn``."""

    def __init__(self, kind: str, pfn: int | None) -> None:
        super().__init__(f"{kind} at pfn {pfn}")
        self.kind = kind
        self.pfn = pfn


Page = int | None
"""A ``struct page *``: the page's PFN, or ``None`` for NULL."""


def page_to_pfn(page: Page) -> int:
    """``page_to_pfn(page)``; NULL maps to ``NULL_PFN`` (scenario-format.md, "NULL pages")."""
    return NULL_PFN if page is None else page


def pfn_to_page(pfn: int) -> int:
    """``pfn_to_page(pfn)``: never NULL, whatever frame ``pfn`` names."""
    return pfn


class Lru:
    """The ``lru`` list_heads of every page and of the driver's list heads."""

    __slots__ = ("_heads", "next", "prev")

    def __init__(self) -> None:
        self.next: dict[int, int] = {}
        self.prev: dict[int, int] = {}
        self._heads = 0

    def init_list_head(self) -> int:
        """``INIT_LIST_HEAD``: a fresh, empty list; returns its head's key."""
        self._heads -= 1
        head = self._heads
        self.next[head] = head
        self.prev[head] = head
        return head

    def list_add(self, page: Page, head: int) -> None:
        """``list_add(&page->lru, head)``: insert ``page`` right after ``head``."""
        if page is None:
            raise Oops("null_deref", None)
        if page in self.next:
            raise Oops("list_corrupt", page)
        first = self.next[head]
        self.next[page] = first
        self.prev[page] = head
        self.prev[first] = page
        self.next[head] = page

    def list_del(self, page: int) -> None:
        """``list_del(&page->lru)``: unlink ``page`` (it is then on no list)."""
        prev = self.prev.pop(page)
        nxt = self.next.pop(page)
        self.next[prev] = nxt
        self.prev[nxt] = prev

    def first(self, head: int) -> int:
        """``list_first_entry(head)``; equals ``head`` when the list is empty."""
        return self.next[head]

    def next_of(self, entry: int) -> int:
        """``list_next_entry(entry)``; equals the head after the last entry."""
        return self.next[entry]

    def entries(self, head: int) -> list[int]:
        """The pages of the list, head to tail (the kernel's iteration order)."""
        out: list[int] = []
        nxt = self.next
        pos = nxt[head]
        while pos != head:
            out.append(pos)
            pos = nxt[pos]
        return out
