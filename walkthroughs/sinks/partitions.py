"""Where MongoDB documents are written from: the sink partition of a business (no I/O).

Apart from the sink (``sinks.mongo``) so that the flow routes documents without loading
MongoDB's driver, which a deployment with MongoDB off never needs.
"""

from __future__ import annotations

import zlib

SINK_PARTITIONS = 64
"""Fixed: partition names are part of the recovery format (their state is empty, though)."""
_PARTITION_KEYS = tuple(str(i) for i in range(SINK_PARTITIONS))


def partition_of(business_id: str) -> str:
    """The key of the sink partition that writes a business's documents.

    crc32 of its id, stable across processes. The flow groups documents by it before they cross.
    """
    return _PARTITION_KEYS[zlib.crc32(business_id.encode()) % SINK_PARTITIONS]
