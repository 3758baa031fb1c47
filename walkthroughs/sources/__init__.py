"""Input adapters: the Kafka topics of messages and walk-ins."""
