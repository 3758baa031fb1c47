"""Every `python -m walkthroughs` subcommand, against the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import MONGO_URI
from tests.integration.dataflow_harness import Deployment
from walkthroughs.tools.cli import main
from walkthroughs.tools.topics import describe_topics, read_topic


@pytest.fixture
def fresh(kafka_bootstrap: str, unique_name: str) -> Iterator[Deployment]:
    """A deployment whose topics do not exist yet (its own name: `deployment` uses ours)."""
    d = Deployment(unique_name + "fresh", kafka_bootstrap, MONGO_URI)
    yield d
    d.delete()


def cli(d: Deployment, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), env=d.env(), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_help_everywhere() -> None:
    for args in (
        [],
        ["topics"],
        ["topics", "create"],
        ["topics", "verify"],
        ["generate"],
        ["backfill"],
        ["report"],
        ["summary"],
        ["doctor"],
    ):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_topics_create_then_verify(fresh: Deployment) -> None:
    out = cli(fresh, "topics", "verify", code=1)
    assert "missing" in out
    out = cli(
        fresh, "topics", "create", "--partitions", f"{fresh.topic('w')}=4", "--retention", "14d"
    )
    assert fresh.topic("w") in out
    out = cli(fresh, "topics", "verify")
    assert "co-partitioning is NOT required" in out
    info = describe_topics(fresh.kafka, [fresh.topic("w"), fresh.topic("out")])
    assert info[fresh.topic("w")].partitions == 4
    assert info[fresh.topic("w")].retention_ms == str(14 * 86400 * 1000)
    assert info[fresh.topic("out")].cleanup_policy == "compact"
    assert "nothing (all exist)" in cli(fresh, "topics", "create")


def test_generate_run_report_summary_and_plot(deployment: Deployment, tmp_path: Path) -> None:
    out = cli(deployment, "generate", "--customers", "300", "--businesses", "4")
    assert "bad" in out
    run = deployment.run("-w", "2")
    assert run.returncode == 0, run.stderr
    report = cli(deployment, "report", "--days", "30", "--plot", str(tmp_path / "daily.png"))
    assert "Daily walkthroughs" in report
    assert "total" in report
    assert "biz-00" in report
    png = (tmp_path / "daily.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5000
    only = cli(deployment, "report", "--days", "30", "--business", "biz-001")
    assert "biz-002" not in only
    summary = cli(deployment, "summary")
    assert "walkthroughs in MongoDB:" in summary
    assert "invalid timezone" in summary


def test_backfill_copies_a_time_range(deployment: Deployment) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    deployment.produce("m", [(b"k1", b"v1"), (b"k2", b"v2")])
    deployment.produce("w", [(b"k3", b"v3")])
    after = datetime.now(UTC) + timedelta(seconds=1)
    out = cli(deployment, "backfill", "--since", before.isoformat(), "--until", after.isoformat())
    assert "backfilled" in out
    # A tombstone (no value) would sort as b"" and still fail the comparison.
    assert sorted(r.value or b"" for r in read_topic(deployment.kafka, deployment.topic("mb"))) == [
        b"v1",
        b"v2",
    ]
    assert [r.value for r in read_topic(deployment.kafka, deployment.topic("wb"))] == [b"v3"]
    empty = cli(
        deployment,
        "backfill",
        "--since",
        after.isoformat(),
        "--until",
        (after + timedelta(hours=1)).isoformat(),
    )
    assert "backfilled" in empty
    assert len(read_topic(deployment.kafka, deployment.topic("mb"))) == 2


def test_doctor_passes_on_a_healthy_deployment_and_names_what_fails(
    deployment: Deployment, fresh: Deployment, tmp_path: Path
) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(tmp_path), "2"], check=True)
    ok = cli(deployment, "doctor", "--recovery-dir", str(tmp_path))
    assert ok.count("ok") >= 5
    bad = cli(fresh, "doctor", "--recovery-dir", str(tmp_path / "nowhere"), code=1)
    assert "missing:" in bad
    assert "no partitions" in bad


def test_doctor_checks_the_schema_registry_when_the_output_is_framed(
    deployment: Deployment, tmp_path: Path
) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(tmp_path), "1"], check=True)
    framed = {"WALKTHROUGHS_OUTPUT_FORMAT": "confluent", "WALKTHROUGHS_STARTUP_TIMEOUT": "2s"}
    args = ["doctor", "--recovery-dir", str(tmp_path)]
    env = deployment.env(**framed, WALKTHROUGHS_SCHEMA_REGISTRY_URL="mock://doctor-test")
    ok = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert "registered at" in ok.output
    unreachable = "http://svc:d0ctor-pw@127.0.0.1:1"
    env = deployment.env(**framed, WALKTHROUGHS_SCHEMA_REGISTRY_URL=unreachable)
    bad = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert bad.exit_code == 1, bad.output
    assert "cannot register the walkthrough schema" in bad.output
    assert "d0ctor-pw" not in bad.output


def test_generate_can_frame_its_traffic_as_a_schema_registry_serializer_does(
    deployment: Deployment,
) -> None:
    said = cli(
        deployment, "generate", "--customers", "60", "--format", "confluent", "--schema-id", "9"
    )
    said = " ".join(said.split())  # the console wraps long lines
    assert "framed with schema id 9" in said
    values = [
        r.value
        for suffix in ("m", "w")
        for r in read_topic(deployment.kafka, deployment.topic(suffix))
        if r.value is not None
    ]
    assert values
    assert all(v[:5] == b"\x00\x00\x00\x00\x09" for v in values)
    proc = deployment.run("-w", "1")
    assert proc.returncode == 0, proc.stderr
    assert deployment.output()  # framed inputs attribute as bare ones do
    bad = int(said.split("(")[-1].split(" bad")[0])
    assert len(deployment.dead_letters()) == bad
