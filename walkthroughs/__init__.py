"""Walkthroughs: attribute store walk-ins to the marketing messages that brought customers in.

The package reads like the data path:

* ``schema``  - domain records (compact named tuples) and the closed sets (channels, reasons).
* ``framing`` - Confluent Schema Registry frames around protobuf records: read, write.
* ``codec``   - bytes <-> records: decode + validate the wire schema, encode walkthroughs.
* ``config``  - ``Settings`` from the ``WALKTHROUGHS_*`` environment, validated at start-up.
* ``output_schema`` - the Schema Registry id of framed output: given, or registered at start-up.
* ``errors``  - the exception tree.

Generated protobuf code lives in ``walkthroughs._pb`` (``make proto``), never edited by hand.
"""
