"""The local stack manager's pure helpers: what must hold before any server starts."""

from __future__ import annotations

import uuid
from pathlib import Path

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


def test_a_missing_postgresql_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STACK_PG_BINDIR", str(tmp_path))  # no initdb, no postgres in it
    module = localstack()
    with pytest.raises(module.StackError, match=r"`apt-get install postgresql`"):
        module.pg_bindir()


def test_ferretdb_starts_after_its_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    module = localstack()
    monkeypatch.setattr(module, "MONGO_BACKEND", "postgresql")
    assert [s.name for s in module.servers()] == ["kafka", "postgres", "ferretdb"]
    monkeypatch.setattr(module, "MONGO_BACKEND", "sqlite")
    assert [s.name for s in module.servers()] == ["kafka", "ferretdb"]


def test_an_unknown_backend_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = localstack()
    monkeypatch.setattr(module, "MONGO_BACKEND", "mysql")
    monkeypatch.setattr(module, "STARTERS", {})  # a start would fail the test with a KeyError
    with pytest.raises(module.StackError, match=r"STACK_MONGO_BACKEND .* not 'mysql'"):
        module.up()
