"""Fixtures of the in-process dataflow tests: every test runs under each engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from bytewax.recovery import RecoveryConfig

from tests.flow.driver import ENGINES, Engine, FlowDriver, recovery_store


@pytest.fixture(params=ENGINES, ids=lambda engine: engine.name)
def engine(request: pytest.FixtureRequest) -> Engine:
    """One worker (``run_main``), then 2 worker threads (``cluster_main``)."""
    chosen: Engine = request.param
    return chosen


@pytest.fixture
def driver(engine: Engine) -> FlowDriver:
    """A driver with the default rules and processing time at ``T0``."""
    return FlowDriver(engine)


@pytest.fixture
def recovery(tmp_path: Path) -> RecoveryConfig:
    """A fresh recovery store for the runs of one test."""
    return recovery_store(tmp_path / "recovery")
