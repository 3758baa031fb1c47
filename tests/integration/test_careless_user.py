"""The first hour: each careless case a new user hits is one line naming what to fix.

Each case runs a real command (the dataflow, or a ``python -m walkthroughs`` one) against the
real servers, with one thing wrong, and checks what a person reads: a few lines at most, the
setting or option to fix named in one of them, no traceback, no secret. Before (issue 24): a
wrong Kafka port printed ~100 librdkafka lines in the dataflow and ~586 in ``summary``; a bad
``--plot`` folder a 46-line traceback; ``--days -1`` was taken.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from pymongo import MongoClient

from tests.integration.dataflow_harness import REPO, Deployment
from walkthroughs.sinks.mongo import COUNTS

SECRET = "s3cret-Careless-pw"
CLOSED_MONGO = f"mongodb://svc:{SECRET}@127.0.0.1:1/?authSource=admin"
CLOSED_KAFKA = "127.0.0.1:1"

# name, command ("dataflow" or the CLI's arguments), settings, what a line must say, most lines
CASES: list[tuple[str, tuple[str, ...], dict[str, str], str, int]] = [
    (
        "kafka port, dataflow",
        ("dataflow",),
        {"WALKTHROUGHS_KAFKA_BOOTSTRAP": CLOSED_KAFKA},
        "cannot reach Kafka at 127.0.0.1:1 within 2s (WALKTHROUGHS_KAFKA_BOOTSTRAP",
        4,
    ),
    (
        "kafka port, doctor",
        ("doctor",),
        {"WALKTHROUGHS_KAFKA_BOOTSTRAP": CLOSED_KAFKA},
        "FAIL  kafka           cannot reach Kafka at 127.0.0.1:1 (WALKTHROUGHS_KAFKA_BOOTSTRAP)",
        8,
    ),
    (
        "kafka port, summary",
        ("summary",),
        {"WALKTHROUGHS_KAFKA_BOOTSTRAP": CLOSED_KAFKA},
        "Error: cannot reach Kafka at 127.0.0.1:1 (WALKTHROUGHS_KAFKA_BOOTSTRAP)",
        10,
    ),
    (
        "mongo port, dataflow",
        ("dataflow",),
        {"WALKTHROUGHS_MONGO_URI": CLOSED_MONGO},
        "cannot reach MongoDB at mongodb://svc:***@127.0.0.1:1/?authSource=admin within 2s "
        "(WALKTHROUGHS_MONGO_URI",
        4,
    ),
    (
        "mongo port, doctor",
        ("doctor",),
        {"WALKTHROUGHS_MONGO_URI": CLOSED_MONGO},
        "FAIL  mongodb         cannot reach MongoDB at mongodb://svc:***@127.0.0.1:1/",
        8,
    ),
    (
        "mongo port, report",
        ("report",),
        {"WALKTHROUGHS_MONGO_URI": CLOSED_MONGO},
        "Error: cannot reach MongoDB at mongodb://svc:***@127.0.0.1:1/?authSource=admin "
        "(WALKTHROUGHS_MONGO_URI): ServerSelectionTimeoutError",
        2,
    ),
    (
        "mongo port, summary",
        ("summary",),
        {"WALKTHROUGHS_MONGO_URI": CLOSED_MONGO},
        "Error: cannot reach MongoDB at mongodb://svc:***@127.0.0.1:1/",
        2,
    ),
    (
        "plot into a missing folder",
        ("report", "--plot", "/nonexistent/dir/x.png"),
        {},
        "Invalid value for '--plot': folder '/nonexistent/dir' does not exist",
        4,
    ),
    ("days below one", ("report", "--days", "-1"), {}, "Invalid value for '--days'", 4),
    ("days zero", ("report", "--days", "0"), {}, "Invalid value for '--days'", 4),
    (
        "a business with no walkthroughs",
        ("report", "--business", "nope"),
        {},
        "Error: no walkthroughs ever counted for business nope",
        2,
    ),
    (
        "typo of a setting, dataflow",
        ("dataflow",),
        {"WALKTHROUGHS_MONGO_URL": "mongodb://x"},
        "unknown setting WALKTHROUGHS_MONGO_URL (did you mean WALKTHROUGHS_MONGO_URI?)",
        2,
    ),
    (
        "typo of a setting, doctor",
        ("doctor",),
        {"WALKTHROUGHS_MONGO_URL": "mongodb://x"},
        "unknown setting WALKTHROUGHS_MONGO_URL (did you mean WALKTHROUGHS_MONGO_URI?)",
        2,
    ),
    (
        "typo of the Kafka address's setting",
        ("dataflow",),
        {"WALKTHROUGHS_KAFKA_BOOTSTRAPP": "127.0.0.1:9092"},
        "(did you mean WALKTHROUGHS_KAFKA_BOOTSTRAP?)",
        2,
    ),
    (
        "typo of the Kafka address's setting, a command",
        ("topics", "verify"),
        {"WALKTHROUGHS_KAFKA_BOOTSTRAPP": "127.0.0.1:9092"},
        "(did you mean WALKTHROUGHS_KAFKA_BOOTSTRAP?)",
        2,
    ),
    (
        "typo of a Kafka client property",
        ("doctor",),
        {"WALKTHROUGHS_KAFKA_SASL_MECHANISMM": "PLAIN"},
        "(did you mean WALKTHROUGHS_KAFKA_SASL_MECHANISM?)",
        8,
    ),
]


@pytest.fixture
def counted(deployment: Deployment) -> Deployment:
    """A deployment whose MongoDB has one day's count, as after a run."""
    client: MongoClient[dict[str, object]] = MongoClient(deployment.mongo_uri)
    client[deployment.name][COUNTS].insert_one(
        {"business_id": "b1", "date": "2026-12-01", "count": 3, "by_channel": {"EMAIL": 3}}
    )
    client.close()
    return deployment


@pytest.mark.parametrize(
    ("command", "settings", "says", "most_lines"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_careless_case_is_one_line_naming_what_to_fix(
    counted: Deployment,
    command: tuple[str, ...],
    settings: dict[str, str],
    says: str,
    most_lines: int,
) -> None:
    argv = (
        ["-m", "bytewax.run", "dataflow"]
        if command == ("dataflow",)
        else ["-m", "walkthroughs", *command]
    )
    env = counted.env(WALKTHROUGHS_STARTUP_TIMEOUT="2s", **settings)
    env.pop("COLUMNS", None)  # the width a pipe gets: nothing may be wrapped to fit it
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert SECRET not in output
    assert any(says in line for line in lines), output
    assert len(lines) <= most_lines, output
