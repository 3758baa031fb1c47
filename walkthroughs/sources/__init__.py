"""Input adapters: the Kafka topics of messages, walk-ins and erasure requests.

* ``kafka``: every partition of the input topics, offsets kept in Bytewax recovery.
"""
