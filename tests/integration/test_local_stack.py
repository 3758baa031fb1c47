"""`make up` / `make down` on a stack of their own: a fresh folder, ports of its own.

The shared stack the other tests use is left alone: this one starts Kafka, PostgreSQL and
FerretDB from nothing (as on a fresh clone), restarts FerretDB's backend under it, and checks that
`down` leaves no process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from pymongo.collection import Collection

from tests.integration.dataflow_harness import REPO, wait_for
from walkthroughs.testing.ports import free_ports

SERVERS = ("kafka", "postgres", "ferretdb")


class PrivateStack:
    """``stack/localstack.py`` run as `make` runs it, with its own folder and ports."""

    def __init__(self, folder: Path) -> None:
        kafka, controller, mongo, pg = free_ports(4)
        self.folder = folder
        self.mongo_port = mongo
        self.env = {
            **os.environ,
            "STACK_DIR": str(folder),
            "STACK_KAFKA_PORT": str(kafka),
            "STACK_KAFKA_CONTROLLER_PORT": str(controller),
            "STACK_MONGO_PORT": str(mongo),
            "STACK_PG_PORT": str(pg),
            "STACK_MONGO_BACKEND": "postgresql",
        }

    def command(self, name: str) -> str:
        """Run ``localstack.py NAME``; return its output, failing the test on a non-zero exit."""
        proc = subprocess.run(
            [sys.executable, str(REPO / "stack" / "localstack.py"), name],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def pids(self) -> dict[str, int]:
        """The pid file of each server that has one."""
        files = {s: self.folder / "run" / f"{s}.pid" for s in SERVERS}
        return {s: int(f.read_text()) for s, f in files.items() if f.exists()}

    def round_trip(self) -> dict[str, object] | None:
        """Write a document through FerretDB and read it back."""
        client: pymongo.MongoClient[dict[str, object]]
        with pymongo.MongoClient(
            f"mongodb://127.0.0.1:{self.mongo_port}", serverSelectionTimeoutMS=3000
        ) as client:
            coll: Collection[dict[str, object]] = client["stacktest"]["docs"]
            coll.replace_one({"_id": 1}, {"_id": 1, "n": 2}, upsert=True)
            return coll.find_one({"_id": 1})


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (a zombie has stopped running)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def children_of(parent: int) -> set[int]:
    """Pids of the processes whose parent is ``parent`` (PostgreSQL's own workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.add(int(entry.name))
    return found


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path / "stack")
    try:
        yield stack
    finally:
        stack.command("down")
        data = stack.folder / "postgres" / "data"
        if data.is_symlink():  # tmp_path is out of the postgres user's reach (mode 700)
            shutil.rmtree(data.resolve())


def test_up_is_idempotent_survives_a_backend_restart_and_down_leaves_nothing(
    private_stack: PrivateStack,
) -> None:
    out = private_stack.command("up")
    assert "initialising a PostgreSQL cluster" in out
    started = private_stack.pids()
    assert set(started) == set(SERVERS)
    assert private_stack.round_trip() == {"_id": 1, "n": 2}

    again = private_stack.command("up")
    assert all(f"{s} already running (pid {started[s]})" in again for s in SERVERS)
    assert private_stack.pids() == started

    # FerretDB's backend stops under it: `up` starts only PostgreSQL, on the data it kept, and
    # FerretDB answers again from the same process.
    os.kill(started["postgres"], signal.SIGINT)
    wait_for(lambda: not Path(f"/proc/{started['postgres']}").exists())
    out = private_stack.command("up")
    assert "initialising" not in out
    restarted = private_stack.pids()
    assert restarted["postgres"] != started["postgres"]
    assert {s: restarted[s] for s in ("kafka", "ferretdb")} == {
        s: started[s] for s in ("kafka", "ferretdb")
    }
    assert wait_for(private_stack.round_trip, timeout_s=30) == {"_id": 1, "n": 2}

    servers = set(restarted.values()) | children_of(restarted["postgres"])
    assert len(servers) > len(SERVERS)  # PostgreSQL's workers are among them
    private_stack.command("down")
    assert private_stack.pids() == {}
    assert alive(servers) == set()
