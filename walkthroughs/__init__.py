"""Walkthroughs: attribute store walk-ins to the marketing messages that brought customers in.

The package reads like the data path:

* ``wire``: the wire formats: records, decoding and validation, frames, erasure requests.
* ``sources``: the Kafka input partitions, offsets kept in Bytewax recovery.
* ``attribution``: the rule, early then exact, over per-customer state (pure logic).
* ``dataflow``: the Bytewax wiring, and the parcels that move between its steps.
* ``sinks``: Kafka (walkthroughs, dead letters) and MongoDB outputs.
* ``runtime``: settings, start-up checks, health, metrics, logs, secrets, stopping.
* ``utils``: small pure helpers (bounded caches, shared strings).
* ``tools``: the operator CLI, topic administration, sample traffic (never in the dataflow).
* ``errors``: the exception tree.
* ``testing``: support for the tests and benches; never imported by the service.

* ``_pb``: the protobuf code generated from ``proto/`` (``make proto``), never edited by hand.

Each package's docstring lists its modules (``tests/unit/test_layers.py`` checks that every
module is listed, and which packages may import which).
"""
