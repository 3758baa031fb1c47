"""The local stack manager's pure helpers: what must hold before any server starts."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import localstack


def test_kafka_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leading ``-`` made the storage tool read the id as an option, failing one CI run in 64."""
    module = localstack()
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(module.uuid, "uuid4", lambda: next(draws))
    cluster_id = module.kafka_cluster_id()
    assert not cluster_id.startswith("-")
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
