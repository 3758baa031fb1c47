"""Fixtures of the integration tests: an isolated deployment on the real local stack."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import MONGO_URI
from tests.integration.dataflow_harness import REPO, Deployment


@pytest.fixture
def deployment(kafka_bootstrap: str, unique_name: str) -> Iterator[Deployment]:
    """Per-test topics (partition counts 3/2/5/1/3/1) and database, deleted afterwards."""
    d = Deployment(unique_name, kafka_bootstrap, MONGO_URI)
    d.create()
    yield d
    d.delete()


def localstack() -> ModuleType:
    """The project's stack manager, to stop, pause and start servers of the local stack."""
    spec = importlib.util.spec_from_file_location("localstack", REPO / "stack" / "localstack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stack() -> Iterator[ModuleType]:
    """Yields the stack manager; whatever a test stopped or paused runs again afterwards."""
    module = localstack()
    try:
        yield module
    finally:
        for server in (module.KAFKA, module.POSTGRES, module.FERRETDB):
            module.resume(server)
        module.up()
