"""Shared vocabulary: protocol constants, scenarios, environment (host, allocator, VMCI), variants.

The bottom layer: it imports nothing from the readings or the applications.
"""
