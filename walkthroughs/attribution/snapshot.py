"""The recovery format of the attribution state: versioned, compressed, restored (no I/O).

A shard's snapshot is the tuple ``(STATE_FORMAT, packed customers, their message count, their
walk-in count, latest decision scheduled, latest walk-in read, erasure markers, attribution
window)`` pickled and
compressed with zstd (level 1, ~4x: under load every shard is snapshotted at every epoch, and an
epoch's snapshots are all in memory at once on their way to the store). A packed customer is
``HEAD`` (its timer's deadline) followed by its ``Records`` pickled: bytes, immutable, copied
by reference into every later snapshot.

A snapshot of another format is refused with a message, never misread.
"""

from __future__ import annotations

import pickle
import struct
import threading
from typing import Any, Final

import zstandard

from walkthroughs.attribution.crowded import CrowdedCustomer
from walkthroughs.attribution.customer import Customer

STATE_FORMAT: Final = 6
"""Version of the layout above, of the records in ``records.py`` and of the state keys they are
stored under: 6 holds customers under 48 routes (``walkthroughs.utils.routes``), 5 under 1,024
shards named ``0000``-``1023``."""

State = Customer | CrowdedCustomer

HEAD: Final = struct.Struct("<q")  # a packed customer starts with its timer's deadline (ns)
NO_DUE: Final = -(2**63)  # ... or this, when it has no timer
_ZSTD = threading.local()  # a zstd context is not safe to share between worker threads


def pack(state: State) -> bytes:
    """A customer as bytes: its timer's deadline, then its records."""
    head = HEAD.pack(NO_DUE if state.due_ns is None else state.due_ns)
    return head + pickle.dumps(state.records(), protocol=pickle.HIGHEST_PROTOCOL)


def packed_due(blob: bytes) -> int | None:
    """The deadline of a packed customer's timer (its head), without unpickling it."""
    due: int = HEAD.unpack_from(blob)[0]
    return None if due == NO_DUE else due


def unpack(blob: bytes) -> State:
    """The inverse of ``pack`` (pickle keeps a walk-in's ``best`` the very stored message)."""
    state: State = Customer(*pickle.loads(memoryview(blob)[HEAD.size :]))
    if state.full:
        state = CrowdedCustomer(state.records())
    state.due_ns = packed_due(blob)
    return state


def encode(state: tuple[Any, ...]) -> bytes:
    """A shard's snapshot tuple, pickled and compressed."""
    compressor: zstandard.ZstdCompressor | None = getattr(_ZSTD, "compressor", None)
    if compressor is None:
        compressor = _ZSTD.compressor = zstandard.ZstdCompressor(level=1)
    return compressor.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def decode(blob: bytes) -> tuple[Any, ...]:
    """The snapshot tuple of ``encode`` output, checked for its format."""
    state = pickle.loads(zstandard.ZstdDecompressor().decompress(blob))
    version = state[0] if isinstance(state, tuple) and state else None
    if not isinstance(state, tuple) or version != STATE_FORMAT:
        msg = (
            f"recovery snapshot has state format {version}, this version reads {STATE_FORMAT}: "
            "start from a fresh recovery store or run the matching version"
        )
        raise ValueError(msg)
    return state
