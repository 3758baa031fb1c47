"""The Kubernetes manifests and the Dockerfile, checked offline (no cluster, no Docker engine).

Schema validation with kubernetes-validate; then what it cannot see: selectors that match the
pod labels, env names that the service knows, and the process-id / address wiring of the Bytewax
cluster for 1, 3 and 5 replicas (the init container's script is run for real).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from walkthroughs.runtime.config import _PARSERS, KAFKA_PREFIX
from walkthroughs.runtime.metrics import MetricName

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "k8s"))
from scale import render  # noqa: E402

BIN = Path(sys.executable).parent
BYTEWAX_ENV = {
    "BYTEWAX_WORKERS_PER_PROCESS",
    "BYTEWAX_RECOVERY_DIRECTORY",
    "BYTEWAX_SNAPSHOT_INTERVAL",
    "BYTEWAX_RECOVERY_BACKUP_INTERVAL",
    "BYTEWAX_STATEFULSET_NAME",
    "BYTEWAX_HOSTFILE_PATH",
    "BYTEWAX_POD_NAME",
}


def docs(replicas: int) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(render(replicas))}


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_manifests_pass_strict_schema_validation(replicas: int, tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(render(replicas))
    for target in (path, REPO / "k8s" / "secret.example.yaml"):
        proc = subprocess.run(
            [BIN / "kubernetes-validate", "--strict", "-k", "1.30", target],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_selectors_match_the_pod_labels() -> None:
    d = docs(2)
    labels = d["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        d["StatefulSet"]["spec"]["selector"]["matchLabels"],
        d["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        d["Service"]["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()
    assert d["StatefulSet"]["spec"]["serviceName"] == d["Service"]["metadata"]["name"]
    assert d["Service"]["spec"]["clusterIP"] == "None"
    assert d["StatefulSet"]["spec"]["podManagementPolicy"] == "Parallel"


def test_every_setting_is_one_the_service_knows() -> None:
    d = docs(2)
    container = d["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    names = set(d["ConfigMap"]["data"]) | {e["name"] for e in container["env"]}
    secret = yaml.safe_load((REPO / "k8s" / "secret.example.yaml").read_text())
    names |= set(secret["stringData"])
    for name in names:
        assert name in _PARSERS or name.startswith(KAFKA_PREFIX) or name in BYTEWAX_ENV, name
    from walkthroughs.runtime.config import Settings

    settings_env = {k: v for k, v in d["ConfigMap"]["data"].items() if k.startswith("WALKTH")}
    Settings.from_env({**settings_env, **secret["stringData"]})  # and they all parse


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_process_ids_and_addresses_agree_for_any_replica_count(
    replicas: int, tmp_path: Path
) -> None:
    d = docs(replicas)
    sts = d["StatefulSet"]
    assert sts["spec"]["replicas"] == replicas
    init = sts["spec"]["template"]["spec"]["initContainers"][0]
    script = init["args"][0]
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert env["REPLICAS"] == str(replicas)
    config = d["ConfigMap"]["data"]
    name = sts["metadata"]["name"]
    service = sts["spec"]["serviceName"]
    assert config["BYTEWAX_STATEFULSET_NAME"] == name
    recovery, hostdir = tmp_path / "recovery", tmp_path / "bytewax"
    recovery.mkdir()
    hostdir.mkdir()
    script = script.replace("/recovery", str(recovery)).replace("/etc/bytewax", str(hostdir))
    port = next(
        p["containerPort"]
        for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]
        if p["name"] == "cluster"
    )
    for ordinal in range(replicas):
        pod = f"{name}-{ordinal}"
        run = subprocess.run(
            ["/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={
                **os.environ,
                "POD_NAME": pod,
                "PATH": f"{BIN}:{os.environ['PATH']}",
                "REPLICAS": env["REPLICAS"],
                "RECOVERY_PARTITIONS": env["RECOVERY_PARTITIONS"],
            },
        )
        assert run.returncode == 0, run.stderr
        hosts = (hostdir / "hostfile.txt").read_text().split()
        # Bytewax: process id = pod name minus "<statefulset>-"; address i must be pod i.
        process_id = int(pod.replace(config["BYTEWAX_STATEFULSET_NAME"] + "-", ""))
        assert process_id == ordinal
        assert hosts == [f"{name}-{i}.{service}:{port}" for i in range(replicas)]
        assert hosts[process_id].startswith(f"{pod}.")
    partitions = sorted(recovery.glob("part-*.sqlite3"))
    assert len(partitions) == int(env["RECOVERY_PARTITIONS"])


def test_scale_refuses_more_replicas_than_recovery_partitions() -> None:
    with pytest.raises(ValueError, match="between 1 and 24"):
        render(25)


def test_dockerfile_lints_clean_and_uses_what_exists() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    lint = subprocess.run(
        [BIN / "hadolint", REPO / "Dockerfile"], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), src
    assert 'ENTRYPOINT ["python", "-m", "bytewax.run", "dataflow"]' in dockerfile
    assert "USER 10001" in dockerfile
    assert "-c constraints.txt" in dockerfile


def test_dashboard_uses_only_metrics_the_service_exports() -> None:
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    used = _metrics_in(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert used <= EXPORTED, used - EXPORTED
    assert len(used) >= 8


def test_alert_rules_use_only_metrics_the_service_exports() -> None:
    rules = yaml.safe_load((REPO / "docs" / "prometheus-alerts.yaml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    used = _metrics_in(r["expr"] for r in alerts.values())
    assert used <= EXPORTED, used - EXPORTED
    # The bad-deploy guard: bad records (not late ones) over records read.
    ratio = alerts["WalkthroughsDeadLetterRatioHigh"]["expr"]
    assert 'reason!="late"' in ratio
    assert "walkthroughs_records_read_total" in ratio
    assert all({"expr", "for", "labels", "annotations"} <= set(r) for r in alerts.values())


EXPORTED = set(typing.get_args(MetricName))


def _metrics_in(expressions: Iterable[str]) -> set[str]:
    """The metric names PromQL expressions use (histogram series named by their metric)."""
    used = {m for e in expressions for m in re.findall(r"walkthroughs_\w+", e)}
    return {m if m in EXPORTED else re.sub(r"_(bucket|sum|count)$", "", m) for m in used}


def test_compose_file_runs_real_kafka_and_mongodb() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    images = {name: svc.get("image", "build") for name, svc in compose["services"].items()}
    assert images["kafka"].startswith("apache/kafka:4.1")
    assert images["mongo"].startswith("mongo:")
    assert compose["services"]["walkthroughs"]["build"] == "."
