"""Output adapters: Kafka (walkthroughs, dead letters) and MongoDB."""
