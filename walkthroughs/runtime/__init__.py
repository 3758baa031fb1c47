"""The running process: settings, start-up checks, health, metrics, logs, secrets, stopping.

* ``config``: ``Settings`` from the ``WALKTHROUGHS_*`` environment, validated at start-up.
* ``kafka_properties``: librdkafka's property names, to suggest one for a misspelt setting.
* ``startup``: the start-up checks of the Kafka clients, topics and record limits.
* ``startup_mongo``: the start-up check of MongoDB (its driver loaded only when it is on).
* ``output_schema``: the Schema Registry id of framed output: given, or registered at start-up.
* ``redaction``: secrets out of every line: redacted URIs and settings, a scrubber.
* ``logs``: one line per record: JSON for the service, plain for the CLI.
* ``kafka_logs``: librdkafka's log through ours, repeats collapsed.
* ``metrics``: the Prometheus metrics.
* ``health``: progress heartbeats, lag measured from a thread, ``/ready`` and ``/live``.
* ``erasure_audit``: the audit lines and metrics of erasures (a digest, never an id).
* ``clock``: processing time, injected.
* ``stopping``: the stop request (SIGTERM) that every sink wait honours.
* ``failpoints``: named ``kill -9`` points for the crash tests (``WT_FAILPOINT``).
"""
