"""A bad deploy fails at start-up, naming what is wrong (the real entry point, no servers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def start(**env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WALKTHROUGHS_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, time.monotonic() - started


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WALKTHROUGHS_HOLD": "soon"}, "WALKTHROUGHS_HOLD='soon' is not a duration"),
        ({"WALKTHROUGHS_WINDOW": "7d"}, "unknown setting WALKTHROUGHS_WINDOW"),
        ({"WALKTHROUGHS_MONGO_URI": "mongodb//x"}, "WALKTHROUGHS_MONGO_URI"),
    ],
    ids=["bad-duration", "unknown-name", "bad-uri"],
)
def test_bad_setting_stops_the_service_naming_it(env: dict[str, str], message: str) -> None:
    proc, _ = start(**env)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_unreachable_kafka_fails_within_the_startup_timeout() -> None:
    proc, elapsed = start(
        WALKTHROUGHS_KAFKA_BOOTSTRAP="127.0.0.1:1", WALKTHROUGHS_STARTUP_TIMEOUT="2s"
    )
    assert proc.returncode != 0
    assert "cannot reach Kafka at 127.0.0.1:1 within 2s" in proc.stderr
    assert elapsed < 30
