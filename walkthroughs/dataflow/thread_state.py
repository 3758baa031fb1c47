"""Each Bytewax worker thread keeps one Python thread state for its whole life.

Bytewax's workers are Rust threads that call into Python through pyo3, which takes the GIL with
``PyGILState_Ensure`` and gives it back with ``PyGILState_Release``. On a thread that has no
Python thread state, Ensure makes one and Release deletes it again: every callback that is not
nested in another starts from a new thread state. Making one maps a fresh frame stack (16 KiB),
deleting it unmaps it (in a process of many threads, a TLB shootdown on every core), and
``threading.local`` data starts empty each time. With 4 processes each worker made ~5,700 of
them over 385k records, one per callback not nested in another (bench/README.md, session 14).

One ``PyGILState_Ensure`` never released keeps the thread's state: later callbacks only take
and give back the GIL. Nothing deletes the state of a thread Python did not start, so it stays
until the interpreter ends, with its ``threading.local`` data: one per worker thread, which in
the service lives as long as the process. A process that runs many dataflows in turn (the
in-process tests) keeps one per worker thread it started.
"""

from __future__ import annotations

import ctypes
import threading

_kept = threading.local()  # persists once the state is kept: that is the point


def keep_thread_state() -> None:
    """Keep the calling thread's Python thread state until the thread ends (idempotent)."""
    if getattr(_kept, "done", False):
        return
    ctypes.pythonapi.PyGILState_Ensure()  # never released, on purpose
    _kept.done = True
