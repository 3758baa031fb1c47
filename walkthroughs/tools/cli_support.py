"""What every ``python -m walkthroughs`` command shares: settings, output, error reporting."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import click
import pymongo
from confluent_kafka import KafkaException
from rich.console import Console

from walkthroughs.errors import ConfigError, WalkthroughsError
from walkthroughs.runtime.config import Settings
from walkthroughs.runtime.redaction import scrub
from walkthroughs.runtime.startup import check_kafka_clients
from walkthroughs.runtime.startup_mongo import mongo_failure
from walkthroughs.sources.kafka import kafka_failure

console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def settings_from_env() -> Settings:
    """The service's settings, from the same ``WALKTHROUGHS_*`` environment as the dataflow."""
    return Settings.from_env(os.environ)


def reports_errors(command: F) -> F:
    """Turn the service's errors and its clients' into a one-line message and exit code 1.

    Kafka's and MongoDB's errors say what the dataflow would say of them: the server, and the
    setting to check.
    """

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except WalkthroughsError as exc:
            raise click.ClickException(scrub(str(exc))) from exc
        except KafkaException as exc:
            kafka = settings_from_env().kafka_config()
            try:  # a WALKTHROUGHS_KAFKA_* setting the client refuses: named as start-up names it
                check_kafka_clients(kafka)
            except ConfigError as refused:
                raise click.ClickException(scrub(str(refused))) from exc
            raise click.ClickException(scrub(kafka_failure(kafka, exc))) from exc
        except pymongo.errors.PyMongoError as exc:
            text = mongo_failure(settings_from_env(), exc)
            raise click.ClickException(scrub(text)) from exc

    return wrapper  # type: ignore[return-value]


def instant(value: str) -> datetime:
    """An ISO 8601 time from the command line (UTC when it names no zone)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        msg = f"{value!r} is not an ISO 8601 time, e.g. 2026-12-01T08:00"
        raise click.BadParameter(msg) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
