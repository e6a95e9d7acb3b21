"""The fourth reading: the driver's own C, compiled in userspace and run against the same Env.

* :mod:`vmballoon.harness.build`: the vendored source (``spec/driver/vmw_balloon.c``),
  the one build-time change (the ``VMWARE_BALLOON_CMD`` macro, seed lines 200-219, found
  wherever a file has it), the kernel headers (stand-ins, ``--include``), the
  compiler and the cache of binaries;
* :mod:`vmballoon.harness.patches`: the fixes as kernel patches (``spec/fixes``);
* :mod:`vmballoon.harness.process`: the compiled driver as a child process whose
  environment is the Python :class:`vmballoon.core.env.Env`;
* :mod:`vmballoon.harness.replay`: a scenario's event log from the C.

The C side is ``vmballoon/harness/c``: ``kshim.h`` (the kernel API the driver uses) and
``harness.c`` (the host, the fault handler and the state dump).
"""
