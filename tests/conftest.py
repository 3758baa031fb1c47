"""Shared fixtures. Integration tests use the real local stack that `make up` starts."""

from __future__ import annotations

import os
import secrets
import socket
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

KAFKA_BOOTSTRAP = os.environ.get("TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
MONGO_URI = os.environ.get("TEST_MONGO_URI", "mongodb://127.0.0.1:27017")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration, so `-m "not integration"` runs without servers."""
    for item in items:
        if Path(item.fspath).parts[-2] == "integration":
            item.add_marker(pytest.mark.integration)


def _require_server(name: str, host_port: str) -> None:
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"{name} is not reachable at {host_port} ({exc}); start it with `make up`")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real broker's address; a missing broker fails the test, never skips it."""
    _require_server("Kafka", KAFKA_BOOTSTRAP)
    return KAFKA_BOOTSTRAP


@pytest.fixture
def unique_name() -> str:
    """A fresh name for a per-test topic or database (letters only: FerretDB is strict)."""
    return "t" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(15))


@pytest.fixture
def mongo_db(unique_name: str) -> Iterator[object]:
    """A per-test database on the real MongoDB-wire server, dropped afterwards."""
    import pymongo

    _require_server("MongoDB", MONGO_URI.removeprefix("mongodb://").split("/")[0])
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        MONGO_URI, serverSelectionTimeoutMS=5000
    )
    try:
        yield client[unique_name]
    finally:
        client.drop_database(unique_name)
        client.close()
