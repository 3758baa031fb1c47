"""A misspelt setting is refused in one line that names the setting most likely meant."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, Producer

from walkthroughs.errors import ConfigError
from walkthroughs.runtime.config import Settings, did_you_mean
from walkthroughs.runtime.kafka_logs import DISCARD
from walkthroughs.runtime.kafka_properties import PROPERTIES
from walkthroughs.runtime.startup import check_kafka_clients


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("WALKTHROUGHS_MONGO_URL", "WALKTHROUGHS_MONGO_URI"),
        ("WALKTHROUGHS_HOLDD", "WALKTHROUGHS_HOLD"),
        ("WALKTHROUGHS_OUTPUT_TOPICS", "WALKTHROUGHS_OUTPUT_TOPIC"),
        ("WALKTHROUGHS_KAFKA_BOOTSTRAPP", "WALKTHROUGHS_KAFKA_BOOTSTRAP"),
        ("WALKTHROUGHS_KAFKA_SASL_MECHANISMM", "WALKTHROUGHS_KAFKA_SASL_MECHANISM"),
        ("WALKTHROUGHS_KAFKA_SECURITY_PROTOCLO", "WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_the_closest_setting_is_suggested(typo: str, meant: str) -> None:
    assert did_you_mean(typo) == f" (did you mean {meant}?)"


def test_what_the_service_sets_or_only_c_can_set_is_never_suggested() -> None:
    assert did_you_mean("WALKTHROUGHS_KAFKA_BOOTSTRAP_SERVER") == (
        " (did you mean WALKTHROUGHS_KAFKA_BOOTSTRAP?)"  # not ..._BOOTSTRAP_SERVERS: reserved
    )
    assert "SSL__CA?" not in did_you_mean("WALKTHROUGHS_KAFKA_SSL_CA")  # ssl_ca: C only
    for name in ("LOGGER", "ON__DELIVERY", "ERROR__CB", "GROUP_ID"):
        with pytest.raises(ConfigError, match="which the service manages itself"):
            Settings.from_env({f"WALKTHROUGHS_KAFKA_{name}": "x"})


def test_nothing_close_points_to_the_list_instead() -> None:
    assert "docs/configuration.md" in did_you_mean("WALKTHROUGHS_COLOUR_OF_THE_SKY")


def test_an_unknown_setting_is_one_short_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"WALKTHROUGHS_MONGO_URL": "mongodb://x"})
    assert str(caught.value) == (
        "unknown setting WALKTHROUGHS_MONGO_URL (did you mean WALKTHROUGHS_MONGO_URI?)"
    )


def test_a_misspelt_kafka_property_names_the_one_meant() -> None:
    settings = Settings.from_env({"WALKTHROUGHS_KAFKA_BOOTSTRAPP": "127.0.0.1:1"})
    with pytest.raises(ConfigError) as caught:
        check_kafka_clients(settings.kafka_config())
    assert str(caught.value) == (
        "WALKTHROUGHS_KAFKA_BOOTSTRAPP is rejected by the Kafka client: No such configuration "
        'property: "bootstrapp" (did you mean WALKTHROUGHS_KAFKA_BOOTSTRAP?)'
    )


def test_the_installed_client_knows_every_property_we_may_suggest() -> None:
    """The list comes from librdkafka's docs: a name it lost would be a bad suggestion."""
    unknown = []
    for name in sorted(PROPERTIES):
        try:
            Producer({name: "not-a-value", "logger": DISCARD})
        except KafkaException as exc:
            if "No such configuration property" in str(exc) or "not settable" in str(exc):
                unknown.append(name)
        except (TypeError, ValueError):
            pass  # known, with a value of another type
    assert unknown == []
