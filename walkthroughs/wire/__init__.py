"""The wire formats: what comes in and goes out, as bytes and as records (no I/O).

* ``schema``: the domain records (compact named tuples) and the closed sets (channels, reasons).
* ``framing``: Confluent Schema Registry frames around protobuf records: read, write.
* ``codec``: bytes <-> records: decode and validate the wire schema, encode walkthroughs.
* ``erasure_requests``: erasure requests, JSON records of the compacted erasures topic.
* ``dead_letter_headers``: the redrive headers a dead letter carries.

The protobuf code generated from ``proto/`` is ``walkthroughs._pb`` (``make proto``).
"""
