"""The Schema Registry id that frames the output topic's records (``WALKTHROUGHS_OUTPUT_FORMAT``).

Given (``WALKTHROUGHS_OUTPUT_SCHEMA_ID``), or found at start-up in the registry
(``WALKTHROUGHS_SCHEMA_REGISTRY_URL``): the wire schema's file, ``events.proto``, is registered
under the output topic's value subject (``<topic>-value``, the serializers' default naming) by
confluent-kafka's own ``ProtobufSerializer``, with ``timestamp.proto`` as a reference, exactly as
a Java or Python producer of this schema would; a schema already there gets its existing id. A
given id must be that of the same file: the records are framed with the ``Walkthrough`` message's
index in it. An unreachable registry or a refused schema stops start-up with one line naming the
variable; its credentials never appear (the redactor knows them).

The registry client (confluent-kafka's ``schema_registry``, with its HTTP stack) is imported only
when the framed format is asked for: the default output needs none of it.
"""

from __future__ import annotations

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.errors import StartupError
from walkthroughs.runtime.config import Settings
from walkthroughs.runtime.redaction import redact_uri, scrub
from walkthroughs.wire.framing import MAGIC, schema_id


def output_schema_id(settings: Settings) -> int:
    """The schema id of output frames; 0 when the output is bare protobuf.

    Raises:
        StartupError: the registry cannot be reached, or refuses the schema.
    """
    if settings.output_format != "confluent":
        return 0
    if settings.output_schema_id:
        return settings.output_schema_id
    return register(settings)


def register(settings: Settings) -> int:
    """Register the wire schema under the output topic's subject; return its id."""
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415

    timeout_s = settings.startup_timeout.total_seconds()
    try:
        client = SchemaRegistryClient.new_client(
            {**settings.registry_config(), "timeout": timeout_s, "max.retries": 1}
        )
        serialize = ProtobufSerializer(
            pb.Walkthrough, client, {"use.deprecated.format": False, "auto.register.schemas": True}
        )
        framed = serialize(
            pb.Walkthrough(), SerializationContext(settings.output_topic, MessageField.VALUE)
        )
    except Exception as exc:  # HTTP, TLS, auth, refusal: all one start-up line
        where = redact_uri(settings.schema_registry_url)
        why = scrub(" ".join(str(exc).split()) or type(exc).__name__)
        msg = (
            f"cannot register the walkthrough schema in the Schema Registry at {where} "
            f"(WALKTHROUGHS_SCHEMA_REGISTRY_URL): {why}"
        )
        raise StartupError(msg) from exc
    if not framed or framed[0] != MAGIC:
        msg = "the Schema Registry serializer wrote no frame (WALKTHROUGHS_SCHEMA_REGISTRY_URL)"
        raise StartupError(msg)
    return schema_id(framed)
