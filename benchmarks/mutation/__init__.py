"""Mutation testing of the readings (issue 8, item 5): ``python -m benchmarks.mutation``.

Kept free of project imports: the worker (:mod:`benchmarks.mutation.worker`) must
import the project only inside each forked child, from the mutated copy.
"""
