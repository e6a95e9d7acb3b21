"""The fourth reading: the driver's own C, compiled in userspace and run against the same Env.

* :mod:`vmballoon.harness.build`: the vendored source (``spec/driver/vmw_balloon.c``),
  the one build-time change (the ``VMWARE_BALLOON_CMD`` macro, seed lines 200-219, found
  wherever a file has it), the kernel headers (stand-ins, ``--include``), the
  compiler and the cache of binaries;
* :mod:`vmballoon.harness.patches`: the fixes as kernel patches (``spec/fixes``);
* :mod:`vmballoon.harness.process`: the compiled driver as a shared library loaded in a
  forked child per module load, its environment the Python
  :class:`vmballoon.core.env.Env` called directly (ctypes callbacks), its state
  readable at every environment call;
* :mod:`vmballoon.harness.replay`: a scenario's event log from the C (and the line of a
  crash);
* :mod:`vmballoon.harness.coverage`: the driver's line and branch coverage (gcov) and
  the reviewed unreachable branches (``vmballoon/harness/coverage-unreachable.json``).

The C side is ``vmballoon/harness/c``: ``kshim.h`` (the kernel API the driver uses) and
``harness.c`` (the environment's entry points, the fault handler, the state readers).
"""
