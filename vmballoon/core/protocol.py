"""Protocol constants of vmw_balloon.c, shared by the model, the reference and the proofs.

Every value is copied from the seed (``spec/driver/vmw_balloon.c``); the line
numbers name where.  Nothing here encodes behaviour: it is the vocabulary that
the model, the reference and the environment have in common.
"""

from __future__ import annotations

from typing import Final

# Rates (lines 66-68) and slow cycles (line 74).
RATE_ALLOC_MIN: Final = 512
RATE_ALLOC_MAX: Final = 2048
RATE_ALLOC_INC: Final = 16
SLOW_CYCLES: Final = 4

# Refused pages accumulated per inflation cycle (line 93).
MAX_REFUSED: Final = 16

# Backdoor (lines 98-100).
GUEST_ID_LINUX: Final = 1

# Capabilities (lines 102-115).
CAP_BASIC: Final = 1 << 1
CAP_BATCHED: Final = 1 << 2
CAP_BATCHED_2M: Final = 1 << 3
CAP_SIGNALLED_WAKEUP: Final = 1 << 4
CAPABILITIES: Final = CAP_BASIC | CAP_BATCHED | CAP_BATCHED_2M | CAP_SIGNALLED_WAKEUP

# Page sizes (lines 117-118, 394-400).
SHIFT_2M: Final = 9
PAGES_PER_2M: Final = 1 << SHIFT_2M
NUM_PAGE_SIZES: Final = 2
ORDER_4K: Final = 0
ORDER_2M: Final = 9

# Commands (lines 134-143).
CMD_START: Final = 0
CMD_GET_TARGET: Final = 1
CMD_LOCK: Final = 2
CMD_UNLOCK: Final = 3
CMD_GUEST_ID: Final = 4
CMD_BATCHED_LOCK: Final = 6
CMD_BATCHED_UNLOCK: Final = 7
CMD_BATCHED_2M_LOCK: Final = 8
CMD_BATCHED_2M_UNLOCK: Final = 9
CMD_VMCI_DOORBELL_SET: Final = 10

COMMAND_NAMES: Final[dict[int, str]] = {
    CMD_START: "START",
    CMD_GET_TARGET: "GET_TARGET",
    CMD_LOCK: "LOCK",
    CMD_UNLOCK: "UNLOCK",
    CMD_GUEST_ID: "GUEST_ID",
    CMD_BATCHED_LOCK: "BATCHED_LOCK",
    CMD_BATCHED_UNLOCK: "BATCHED_UNLOCK",
    CMD_BATCHED_2M_LOCK: "BATCHED_2M_LOCK",
    CMD_BATCHED_2M_UNLOCK: "BATCHED_2M_UNLOCK",
    CMD_VMCI_DOORBELL_SET: "VMCI_DOORBELL_SET",
}

# Status codes (lines 147-158).
STATUS_SUCCESS: Final = 0
STATUS_FAILURE: Final = -1
ERROR_CMD_INVALID: Final = 1
ERROR_PPN_INVALID: Final = 2
ERROR_PPN_LOCKED: Final = 3
ERROR_PPN_UNLOCKED: Final = 4
ERROR_PPN_PINNED: Final = 5
ERROR_PPN_NOTNEEDED: Final = 6
ERROR_RESET: Final = 7
ERROR_BUSY: Final = 8
SUCCESS_WITH_CAPABILITIES: Final = 0x03000000

STATUS_NAMES: Final[dict[int, str]] = {
    STATUS_SUCCESS: "SUCCESS",
    ERROR_CMD_INVALID: "ERROR_CMD_INVALID",
    ERROR_PPN_INVALID: "ERROR_PPN_INVALID",
    ERROR_PPN_LOCKED: "ERROR_PPN_LOCKED",
    ERROR_PPN_UNLOCKED: "ERROR_PPN_UNLOCKED",
    ERROR_PPN_PINNED: "ERROR_PPN_PINNED",
    ERROR_PPN_NOTNEEDED: "ERROR_PPN_NOTNEEDED",
    ERROR_RESET: "ERROR_RESET",
    ERROR_BUSY: "ERROR_BUSY",
    SUCCESS_WITH_CAPABILITIES: "SUCCESS_WITH_CAPABILITIES",
}

# Batch page layout (lines 160-197): PAGE_SIZE / sizeof(u64) entries.
PAGE_SHIFT: Final = 12
BATCH_MAX_PAGES: Final = 512
BATCH_STATUS_MASK: Final = (1 << 5) - 1
BATCH_PAGE_MASK: Final = ~((1 << PAGE_SHIFT) - 1) & ((1 << 64) - 1)

# C integer widths.
U16_MASK: Final = (1 << 16) - 1
U32_MASK: Final = (1 << 32) - 1
U64_MASK: Final = (1 << 64) - 1
UINT_MAX: Final = U32_MASK

# page_to_pfn(NULL) in the contract (scenario-format.md, "NULL pages").
NULL_PFN: Final = U64_MASK

# VMCI (include/linux/vmw_vmci_defs.h).
VMCI_INVALID_ID: Final = 0xFFFFFFFF
VMCI_SUCCESS: Final = 0
VMCI_ERROR_NO_RESOURCES: Final = -6  # what a failed vmci_doorbell_create returns here
EIO: Final = 5

# struct vmballoon_stats (lines 222-248), in declaration order; True marks the
# two-element fields indexed by is_2m_pages.
STATS_FIELDS: Final[tuple[tuple[str, bool], ...]] = (
    ("timer", False),
    ("doorbell", False),
    ("alloc", True),
    ("alloc_fail", True),
    ("sleep_alloc", False),
    ("sleep_alloc_fail", False),
    ("refused_alloc", True),
    ("refused_free", True),
    ("free", True),
    ("lock", True),
    ("lock_fail", True),
    ("unlock", True),
    ("unlock_fail", True),
    ("target", False),
    ("target_fail", False),
    ("start", False),
    ("start_fail", False),
    ("guest_type", False),
    ("guest_type_fail", False),
    ("doorbell_set", False),
    ("doorbell_unset", False),
)

EVENTS_FORMAT: Final = "vmballoon-events/1"
"""The ``format`` of an event log (spec/scenario-format.md, "Event log")."""

# The keys of the event log's ``final`` object (scenario-format.md, "Event log"), in the
# contract's order: the scalar fields of struct vmballoon, then its page lists, refused
# counts, pointers and doorbell handle, whether the guest crashed, and the statistics.
FINAL_SCALAR_KEYS: Final[tuple[str, ...]] = (
    "size",
    "target",
    "rate_alloc",
    "slow_allocation_cycles",
    "reset_required",
    "capabilities",
    "supported_page_sizes",
    "batch_max_pages",
    "ops",
)
FINAL_KEYS: Final[tuple[str, ...]] = (
    *FINAL_SCALAR_KEYS,
    "pages",
    "refused",
    "n_refused",
    "batch_page",
    "page",
    "doorbell",
    "crashed",
    "stats",
)


def to_int32(value: int) -> int:
    """The low 32 bits of ``value`` as a C ``int`` (two's complement)."""
    value &= U32_MASK
    return value - (1 << 32) if value & (1 << 31) else value
