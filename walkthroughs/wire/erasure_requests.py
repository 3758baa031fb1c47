"""Erasure requests on the wire: JSON records of the compacted erasures topic (no I/O).

A request is keyed by ``["<business_id>", "<customer_id>"]`` (JSON, UTF-8), so compaction keeps
one per customer, and its value is
``{"business_id": ..., "customer_id": ..., "requested_at": "<ISO 8601, UTC>", "reason": ...}``.
JSON rather than protobuf: the contract's wire schema has no such message, and an operator can
write or read a request with ``kcat`` alone. ``reason`` is for the people who read the topic;
the service never copies it into a log or a metric (it may say who asked, and why).

A tombstone (no value) under a request's key withdraws the request record: docs/operations.md tells
operators to write one once no replay can need the request. It changes nothing and is never
dead-lettered (its key holds the customer's ids). Any other record that is not such a request
becomes a dead letter like any bad input record.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from walkthroughs.errors import DecodeError
from walkthroughs.wire.codec import MAX_ID_BYTES, NS_PER_S
from walkthroughs.wire.schema import DeadLetter, ErasureRequest, ErasureWithdrawn, Origin, Reason

_ID_FIELDS = ("business_id", "customer_id")


def encode_request(
    business_id: str, customer_id: str, requested_at: datetime, reason: str = ""
) -> tuple[bytes, bytes]:
    """Return the (key, value) of a request to erase the customer."""
    value = {
        "business_id": business_id,
        "customer_id": customer_id,
        "requested_at": requested_at.astimezone(UTC).isoformat(),
        "reason": reason,
    }
    return request_key(business_id, customer_id), orjson.dumps(value)


def request_key(business_id: str, customer_id: str) -> bytes:
    """The record key of a customer's requests: compaction keeps the latest one."""
    return orjson.dumps([business_id, customer_id])


def decode_request(value: bytes | None) -> ErasureRequest:
    """Parse and validate a request; raise ``DecodeError`` saying what is wrong."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise DecodeError(Reason.UNDECODABLE, f"erasure request is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DecodeError(Reason.UNDECODABLE, "erasure request is not a JSON object")
    business_id, customer_id = (_checked_id(name, doc.get(name)) for name in _ID_FIELDS)
    return ErasureRequest(business_id, customer_id, _requested_at_ns(doc.get("requested_at")))


def decode_withdrawal(key: bytes | None) -> ErasureWithdrawn:
    """Parse the key of a request's tombstone; raise ``DecodeError`` when it names no customer."""
    try:
        ids = orjson.loads(key or b"")
    except orjson.JSONDecodeError as exc:
        detail = "erasure tombstone key is not JSON [business_id, customer_id]"
        raise DecodeError(Reason.UNDECODABLE, detail) from exc
    if not isinstance(ids, list) or len(ids) != len(_ID_FIELDS):
        detail = "erasure tombstone key is not [business_id, customer_id]"
        raise DecodeError(Reason.UNDECODABLE, detail)
    business_id, customer_id = (_checked_id(n, v) for n, v in zip(_ID_FIELDS, ids, strict=True))
    return ErasureWithdrawn(business_id, customer_id, 0)


def _checked_id(name: str, found: object) -> str:
    if not isinstance(found, str) or not found:
        raise DecodeError(Reason.MISSING_FIELD, name)
    size = len(found.encode())
    if size > MAX_ID_BYTES:
        raise DecodeError(Reason.ID_TOO_LONG, f"{name}: {size} bytes, at most {MAX_ID_BYTES}")
    return found


def _requested_at_ns(raw: object) -> int:
    """The request's time in ns, for the audit's delay; 0 when absent or not ISO 8601.

    Never a reason to refuse: the request names the customer, and a refused request would leave
    its data everywhere and copy its ids into the DLQ.
    """
    if not isinstance(raw, str):
        return 0
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return 0
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def decode_erasure_record(origin: Origin) -> tuple[ErasureRequest, Origin] | DeadLetter:
    """Decode a record of the erasures topic; a bad one becomes a dead letter, never raises."""
    try:
        if origin.value is None:
            return decode_withdrawal(origin.key), origin
        return decode_request(origin.value), origin
    except DecodeError as exc:
        return DeadLetter(origin, exc.reason, str(exc))
