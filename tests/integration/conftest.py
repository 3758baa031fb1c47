"""Fixtures of the integration tests: an isolated deployment on the real local stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import MONGO_URI
from tests.integration.dataflow_harness import Deployment


@pytest.fixture
def deployment(kafka_bootstrap: str, unique_name: str) -> Iterator[Deployment]:
    """Per-test topics (partition counts 3/2/5/1/3/1) and database, deleted afterwards."""
    d = Deployment(unique_name, kafka_bootstrap, MONGO_URI)
    d.create()
    yield d
    d.delete()
