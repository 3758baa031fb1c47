"""Settings: every contract default, every accepted form, and a named error for each bad value."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from walkthroughs.errors import ConfigError
from walkthroughs.runtime.config import Settings, parse_duration
from walkthroughs.runtime.redaction import redact_uri


def test_defaults_are_the_contracts() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "localhost:9092"
    assert s.messages_topics == ("zr-messages", "zr-messages-backfill")
    assert s.walkins_topics == ("walkins", "walkins-backfill")
    assert (s.output_topic, s.dlq_topic) == ("walkthroughs", "walkthroughs-dlq")
    assert (s.mongo_uri, s.mongo_db) == ("mongodb://localhost:27017", "walkthroughs")
    assert s.attribution_window == timedelta(days=7)
    assert s.hold == timedelta(seconds=30)
    assert s.allowed_lateness == timedelta(hours=24)
    assert s.flush_interval == timedelta(seconds=5)
    assert s.stop_at_end is False
    assert dict(s.kafka_extra) == {}


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "WALKTHROUGHS_KAFKA_BOOTSTRAP": "k1:9092, k2:9093",
            "WALKTHROUGHS_MESSAGES_TOPICS": "m",
            "WALKTHROUGHS_WALKINS_TOPICS": "w1,w2,w3",
            "WALKTHROUGHS_OUTPUT_TOPIC": "out",
            "WALKTHROUGHS_DLQ_TOPIC": "dlq",
            "WALKTHROUGHS_MONGO_URI": "mongodb://u:p@db:27017/?replicaSet=rs0",
            "WALKTHROUGHS_MONGO_DB": "dashboard",
            "WALKTHROUGHS_ATTRIBUTION_WINDOW": "3d",
            "WALKTHROUGHS_HOLD": "0",
            "WALKTHROUGHS_ALLOWED_LATENESS": "1h30m",
            "WALKTHROUGHS_FLUSH_INTERVAL": "250ms",
            "WALKTHROUGHS_STOP_AT_END": "1",
        }
    )
    assert s.kafka_bootstrap == "k1:9092,k2:9093"
    assert s.messages_topics == ("m",)
    assert s.walkins_topics == ("w1", "w2", "w3")
    assert (s.output_topic, s.dlq_topic) == ("out", "dlq")
    assert s.mongo_uri == "mongodb://u:p@db:27017/?replicaSet=rs0"
    assert s.mongo_db == "dashboard"
    assert s.attribution_window == timedelta(days=3)
    assert s.hold == timedelta(0)
    assert s.allowed_lateness == timedelta(minutes=90)
    assert s.flush_interval == timedelta(milliseconds=250)
    assert s.stop_at_end is True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("250ms", timedelta(milliseconds=250)),
        ("0", timedelta(0)),
        ("1d12h", timedelta(hours=36)),
        (" 10s ", timedelta(seconds=10)),
    ],
)
def test_duration_forms(raw: str, expected: timedelta) -> None:
    assert parse_duration("WALKTHROUGHS_HOLD", raw) == expected


BAD = [
    ("WALKTHROUGHS_HOLD", "30", "WALKTHROUGHS_HOLD='30' is not a duration"),
    ("WALKTHROUGHS_HOLD", "-5s", "is not a duration"),
    ("WALKTHROUGHS_HOLD", "1.5h", "is not a duration"),
    ("WALKTHROUGHS_HOLD", "", "is not a duration"),
    ("WALKTHROUGHS_HOLD", "5 m", "is not a duration"),
    (
        "WALKTHROUGHS_ATTRIBUTION_WINDOW",
        "0",
        "WALKTHROUGHS_ATTRIBUTION_WINDOW=0 is out of range: use a duration from 1ms to 366d",
    ),
    ("WALKTHROUGHS_ATTRIBUTION_WINDOW", "367d", "WALKTHROUGHS_ATTRIBUTION_WINDOW=367d is out of"),
    ("WALKTHROUGHS_ATTRIBUTION_WINDOW", "99999999999999d", "too large"),
    ("WALKTHROUGHS_FLUSH_INTERVAL", "0s", "WALKTHROUGHS_FLUSH_INTERVAL=0 is out of range"),
    (
        "WALKTHROUGHS_FLUSH_INTERVAL",
        "100000d",
        "WALKTHROUGHS_FLUSH_INTERVAL=100000d is out of range: use a duration from 1ms to 1h",
    ),
    ("WALKTHROUGHS_ALLOWED_LATENESS", "400d", "WALKTHROUGHS_ALLOWED_LATENESS=400d is out of"),
    ("WALKTHROUGHS_MONGO_RETRY_LIMIT", "2d", "WALKTHROUGHS_MONGO_RETRY_LIMIT=2d is out of range"),
    ("WALKTHROUGHS_HOLD", "2d", "WALKTHROUGHS_HOLD (2d) must not exceed"),
    ("WALKTHROUGHS_STOP_AT_END", "maybe", "WALKTHROUGHS_STOP_AT_END='maybe' is not a boolean"),
    ("WALKTHROUGHS_MESSAGES_TOPICS", "", "WALKTHROUGHS_MESSAGES_TOPICS='' is not a topic list"),
    ("WALKTHROUGHS_MESSAGES_TOPICS", "a,,b", "is not a topic list"),
    ("WALKTHROUGHS_MESSAGES_TOPICS", "a b", "is not a topic list"),
    ("WALKTHROUGHS_MESSAGES_TOPICS", "a,a", "names a topic twice"),
    ("WALKTHROUGHS_WALKINS_TOPICS", "zr-messages", "share ['zr-messages']"),
    (
        "WALKTHROUGHS_OUTPUT_TOPIC",
        "walkins",
        "WALKTHROUGHS_OUTPUT_TOPIC='walkins' is also an input",
    ),
    ("WALKTHROUGHS_DLQ_TOPIC", "walkthroughs", "must differ"),
    ("WALKTHROUGHS_DLQ_TOPIC", "..", "is not a topic name"),
    (
        "WALKTHROUGHS_KAFKA_BOOTSTRAP",
        "localhost",
        "WALKTHROUGHS_KAFKA_BOOTSTRAP='localhost' is not",
    ),
    (
        "WALKTHROUGHS_MONGO_URI",
        "http://x",
        "WALKTHROUGHS_MONGO_URI='http://x' is not a MongoDB URI",
    ),
    ("WALKTHROUGHS_MONGO_DB", "a.b", "WALKTHROUGHS_MONGO_DB='a.b' is not a database name"),
    ("WALKTHROUGHS_MONGO_DB", "x" * 64, "is not a database name"),
    ("WALKTHROUGHS_HOLDD", "5s", "WALKTHROUGHS_HOLDD (did you mean WALKTHROUGHS_HOLD?)"),
    ("WALKTHROUGHS_LOG_LEVEL", "LOUD", "WALKTHROUGHS_LOG_LEVEL='LOUD' is not a log level"),
    (
        "WALKTHROUGHS_STARTUP_TIMEOUT",
        "0",
        "WALKTHROUGHS_STARTUP_TIMEOUT=0 is out of range: use a duration from 1s to 1h",
    ),
    (
        "WALKTHROUGHS_KAFKA_BOOTSTRAP",
        "k1:9092,k2:70000",
        "port 70000 of 'k2:70000' is out of range: use 1 to 65535",
    ),
    ("WALKTHROUGHS_KAFKA_BOOTSTRAP", "k1:0", "port 0 of 'k1:0' is out of range"),
    (
        "WALKTHROUGHS_KAFKA_MESSAGE_TIMEOUT_MS",
        "0",
        "WALKTHROUGHS_KAFKA_MESSAGE_TIMEOUT_MS='0' is out of range: use a whole number from 1 to",
    ),
    ("WALKTHROUGHS_KAFKA_MESSAGE_TIMEOUT_MS", "soon", "MESSAGE_TIMEOUT_MS='soon' is out of range"),
    (
        "WALKTHROUGHS_MONGO_URI",
        "mongodb://svc:pa/ss@db",
        "WALKTHROUGHS_MONGO_URI='mongodb://svc:***@db': the user name or password holds a raw '/'",
    ),
    ("WALKTHROUGHS_MONGO_URI", "mongodb://svc:p@ss@db", "holds a raw '@'"),
    ("WALKTHROUGHS_MONGO_URI", "mongodb://svc:pa:ss@db", "holds a raw ':'"),
    ("WALKTHROUGHS_MONGO_ENABLED", "2", "WALKTHROUGHS_MONGO_ENABLED='2' is not a boolean"),
    ("WALKTHROUGHS_KAFKA_security.protocol", "SSL", "is not a Kafka client setting"),
    ("WALKTHROUGHS_KAFKA_GROUP_ID", "x", "sets 'group.id', which the service manages"),
    ("WALKTHROUGHS_TIMEZONE_ALIASES", "PST", "'PST' is not an alias: use NAME=ZONE pairs"),
    ("WALKTHROUGHS_TIMEZONE_ALIASES", "PST=Pacific/Nowhere", "'PST=Pacific/Nowhere' is not"),
    ("WALKTHROUGHS_TIMEZONE_ALIASES", "=UTC", "'=UTC' is not an alias"),
    ("WALKTHROUGHS_TIMEZONE_ALIASES", "UTC=Europe/Paris", "'UTC' is a tzdata zone already"),
    ("WALKTHROUGHS_ERASURES_TOPIC", "walkthroughs", "is also WALKTHROUGHS_OUTPUT_TOPIC: the two"),
    ("WALKTHROUGHS_ERASURES_TOPIC", "walkins", "is also an event topic"),
]


@pytest.mark.parametrize(("name", "raw", "message"), BAD, ids=[f"{b[0]}={b[1]}"[:60] for b in BAD])
def test_bad_value_fails_naming_the_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw})
    assert message in str(caught.value)


def test_timezone_aliases_map_names_tzdata_lacks() -> None:
    s = Settings.from_env(
        {
            "WALKTHROUGHS_TIMEZONE_ALIASES": (
                " Pacific Standard Time = America/Los_Angeles ,,"
                "W. Europe Standard Time=Europe/Berlin"
            )
        }
    )
    assert dict(s.timezone_aliases) == {
        "Pacific Standard Time": "America/Los_Angeles",
        "W. Europe Standard Time": "Europe/Berlin",
    }
    assert dict(Settings.from_env({}).timezone_aliases) == {}


def test_kafka_passthrough_maps_names_to_librdkafka_properties() -> None:
    s = Settings.from_env(
        {
            "WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "WALKTHROUGHS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "WALKTHROUGHS_KAFKA_SASL_USERNAME": "svc",
            "WALKTHROUGHS_KAFKA_SASL_PASSWORD": "hunter2",
            "WALKTHROUGHS_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
            "WALKTHROUGHS_KAFKA_SOME__UNDERSCORED_NAME": "v",
            "OTHER_VARIABLE": "ignored",
        }
    )
    assert s.kafka_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "hunter2",
        "ssl.ca.location": "/etc/ca.pem",
        "some_underscored.name": "v",
        "bootstrap.servers": "localhost:9092",
    }


def test_secrets_never_show_in_repr_or_describe() -> None:
    s = Settings.from_env(
        {
            "WALKTHROUGHS_KAFKA_SASL_PASSWORD": "hunter2",
            "WALKTHROUGHS_MONGO_URI": "mongodb://svc:s3cret@db:27017",
        }
    )
    shown = repr(s) + repr(s.describe())
    assert "hunter2" not in shown
    assert "s3cret" not in shown
    assert s.describe()["mongo_uri"] == "mongodb://svc:***@db:27017"


def test_bad_mongo_uri_error_does_not_leak_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"WALKTHROUGHS_MONGO_URI": "mongo://svc:s3cret@db"})
    assert "s3cret" not in str(caught.value)


def test_redact_uri_leaves_uris_without_password_alone() -> None:
    assert redact_uri("mongodb://db:27017/x") == "mongodb://db:27017/x"


def test_the_output_is_bare_protobuf_unless_framing_is_asked_for() -> None:
    assert Settings().output_format == "protobuf"
    framed = Settings.from_env(
        {
            "WALKTHROUGHS_OUTPUT_FORMAT": "Confluent",
            "WALKTHROUGHS_SCHEMA_REGISTRY_URL": "https://svc:pa55word@registry:8081",
            "WALKTHROUGHS_SCHEMA_REGISTRY_TOKEN": "t0ken-value",
        }
    )
    assert framed.output_format == "confluent"
    assert framed.registry_config() == {
        "url": "https://svc:pa55word@registry:8081",
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": "t0ken-value",
    }
    described = str(framed.describe())
    assert "pa55word" not in described
    assert "t0ken-value" not in described
    assert "pa55word" not in repr(framed)
    given = Settings.from_env(
        {"WALKTHROUGHS_OUTPUT_FORMAT": "confluent", "WALKTHROUGHS_OUTPUT_SCHEMA_ID": "42"}
    )
    assert given.output_schema_id == 42


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WALKTHROUGHS_OUTPUT_FORMAT": "avro"}, "WALKTHROUGHS_OUTPUT_FORMAT='avro' is not"),
        ({"WALKTHROUGHS_OUTPUT_FORMAT": "confluent"}, "needs WALKTHROUGHS_OUTPUT_SCHEMA_ID or"),
        ({"WALKTHROUGHS_OUTPUT_SCHEMA_ID": "7"}, "WALKTHROUGHS_OUTPUT_SCHEMA_ID is set but"),
        (
            {"WALKTHROUGHS_OUTPUT_FORMAT": "confluent", "WALKTHROUGHS_OUTPUT_SCHEMA_ID": "0"},
            "WALKTHROUGHS_OUTPUT_SCHEMA_ID",
        ),
        (
            {"WALKTHROUGHS_SCHEMA_REGISTRY_URL": "registry:8081"},
            "WALKTHROUGHS_SCHEMA_REGISTRY_URL='registry:8081' is not a Schema Registry URL",
        ),
        ({"WALKTHROUGHS_SCHEMA_REGISTRY_TOKEN": "abc"}, "TOKEN is set without WALKTHROUGHS_SCHEMA"),
    ],
)
def test_a_bad_output_format_setting_names_itself(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        Settings.from_env(env)


def test_a_malformed_registry_url_is_quoted_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"WALKTHROUGHS_SCHEMA_REGISTRY_URL": "ftp://svc:pa55word@registry"})
    assert "pa55word" not in str(caught.value)
