"""The redrive headers of a dead letter: what the sink copies, what ``dlq redrive`` adds (no I/O).

A dead letter is the original key and bytes with headers ``error``, ``source_topic``,
``source_partition`` and ``source_offset`` (the contract). ``dlq redrive`` re-produces it to its
source topic with two more headers, which the service copies onto the dead letter if the record
fails again: ``redrive_count`` (how many times it was redriven) and ``redrive_origin`` (where the
record was first read: its lineage). ``tools.dead_letters`` reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence

REDRIVE_COUNT = "redrive_count"
REDRIVE_ORIGIN = "redrive_origin"
REDRIVEN_AT = "redriven_at"
CARRIED_HEADERS = (REDRIVE_COUNT, REDRIVE_ORIGIN)
"""Headers of an input record the service copies onto its dead letter."""
_CARRIED_BYTES = 256  # a hostile producer's header is cut: these are short by construction


def carried_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> list[tuple[str, bytes]]:
    """The redrive headers of an input record, for its dead letter (cut to a safe size)."""
    if not headers:
        return []
    return [
        (name, (value or b"")[:_CARRIED_BYTES])
        for name, value in headers
        if name in CARRIED_HEADERS
    ]
