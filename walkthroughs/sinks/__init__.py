"""Output adapters: Kafka (walkthroughs, dead letters) and MongoDB.

* ``kafka``: the output and dead-letter producers that check every delivery.
* ``partitions``: the MongoDB sink partition of a business (pure).
* ``mongo``: idempotent walkthrough documents and daily counts, one writer per business.
* ``mongo_erasure``: an erasure in MongoDB and on the output topic.
"""
