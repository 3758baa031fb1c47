"""Run the real dataflow (`python -m bytewax.run dataflow`) against the real local stack.

Shared by the end-to-end tests: per-test topics and database, producing with delivery reports
(so each record's partition and offset are known), running the dataflow as a subprocess, and
reading every output back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pymongo import MongoClient

from tests.reference import expected_walkthroughs
from walkthroughs.sinks.mongo import COUNTS, WALKTHROUGHS
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import Record, ensure_topics, produce, read_topic
from walkthroughs.wire.codec import channel_name, decode_walkthrough, to_mongo_doc
from walkthroughs.wire.schema import Walkthrough

REPO = Path(__file__).resolve().parents[2]
# Different partition counts per topic: the service must not need co-partitioned inputs.
PARTITIONS = {"m": 3, "mb": 2, "w": 5, "wb": 1, "out": 3, "dlq": 1, "erase": 1}
Produced = tuple[str, int, int]  # topic, partition, offset


@dataclass
class Deployment:
    """One isolated instance of the service's topics and database."""

    name: str
    bootstrap: str
    mongo_uri: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def topic(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"

    @property
    def kafka(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap}

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WALKTHROUGHS_")}
        env.update(
            {
                "WALKTHROUGHS_KAFKA_BOOTSTRAP": self.bootstrap,
                "WALKTHROUGHS_MESSAGES_TOPICS": f"{self.topic('m')},{self.topic('mb')}",
                "WALKTHROUGHS_WALKINS_TOPICS": f"{self.topic('w')},{self.topic('wb')}",
                "WALKTHROUGHS_OUTPUT_TOPIC": self.topic("out"),
                "WALKTHROUGHS_DLQ_TOPIC": self.topic("dlq"),
                "WALKTHROUGHS_ERASURES_TOPIC": self.topic("erase"),
                "WALKTHROUGHS_MONGO_URI": self.mongo_uri,
                "WALKTHROUGHS_MONGO_DB": self.name,
                "WALKTHROUGHS_STOP_AT_END": "1",
                **self.extra_env,
                **overrides,
            }
        )
        return env

    def create(self) -> None:
        ensure_topics(self.kafka, {self.topic(s): n for s, n in PARTITIONS.items()})

    def delete(self) -> None:
        admin = AdminClient(dict(self.kafka))
        existing = set(admin.list_topics(timeout=30).topics)
        names = [self.topic(s) for s in PARTITIONS if self.topic(s) in existing]
        for future in (admin.delete_topics(names) if names else {}).values():
            future.result(timeout=30)
        client: MongoClient[dict[str, Any]] = MongoClient(self.mongo_uri)
        client.drop_database(self.name)
        client.close()

    def produce(self, suffix: str, records: Sequence[tuple[bytes, bytes | None]]) -> list[Produced]:
        """Produce keyed records in order; return where each one landed."""
        topic = self.topic(suffix)
        return [(topic, p, o) for p, o in produce(self.kafka, topic, records)]

    def feed(self, sample: traffic.Traffic) -> None:
        """Produce a ``traffic.Traffic`` sample to the live topics (messages, then walk-ins)."""
        self.produce("m", sample.messages)
        self.produce("w", sample.walkins)

    def run(
        self,
        *args: str,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
        **overrides: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run the dataflow to completion (bounded mode) and return the finished process.

        Its settings: ``env``, then ``overrides`` (``WALKTHROUGHS_X="..."``); naming one twice is
        a TypeError, as with keyword arguments.
        """
        return subprocess.run(
            [sys.executable, "-m", "bytewax.run", "dataflow", *args],
            cwd=REPO,
            env=self.env(**(env or {}), **overrides),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def cli(
        self,
        *args: str,
        timeout_s: float = 120,
        env: Mapping[str, str] | None = None,
        **overrides: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m walkthroughs ARGS`` with this deployment's settings (wide output:
        a table cell wrapped over two lines would hide what a test greps for); settings as in
        ``run``."""
        return subprocess.run(
            [sys.executable, "-m", "walkthroughs", *args],
            cwd=REPO,
            env={**self.env(**(env or {}), **overrides), "COLUMNS": "1000"},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self, *args: str, log: Path | None = None, **env: str) -> subprocess.Popen[str]:
        """Start the dataflow in the background; its output goes to ``log`` (or a pipe)."""
        out = log.open("w") if log is not None else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow", *args],
            cwd=REPO,
            env=self.env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> dict[str, Walkthrough]:
        """The latest walkthrough per walkin_id on the output topic (what compaction keeps:
        a key whose latest record is a tombstone has none)."""
        return {k: w for k, w in self.latest_records().items() if w is not None}

    def latest_records(self) -> dict[str, Walkthrough | None]:
        """The latest record per walkin_id on the output topic; None for a tombstone."""
        latest: dict[str, Walkthrough | None] = {}
        for record in sorted(
            read_topic(self.kafka, self.topic("out")), key=lambda r: (r.partition, r.offset)
        ):
            assert record.key is not None
            if record.value is None:
                latest[record.key.decode()] = None
                continue
            w = decode_walkthrough(record.value)
            assert record.key == w.walkin_id.encode()
            latest[w.walkin_id] = w
        return latest

    def dead_letters(self) -> list[Record]:
        return read_topic(self.kafka, self.topic("dlq"))

    def mongo(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """All walkthrough documents and count documents (without their generated _id)."""
        client: MongoClient[dict[str, Any]] = MongoClient(self.mongo_uri, tz_aware=True)
        db = client[self.name]
        docs = sorted(db[WALKTHROUGHS].find({}), key=lambda d: d["_id"])
        counts = sorted(
            db[COUNTS].find({}, {"_id": 0, "version": 0}),
            key=lambda d: (d["business_id"], d["date"]),
        )
        client.close()
        return docs, counts


def expected_counts(walkthroughs: Mapping[str, Walkthrough]) -> list[dict[str, Any]]:
    """The counts collection the contract asks for: walkthroughs grouped by business and date."""
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for w in walkthroughs.values():
        by = grouped.setdefault((w.business_id, w.local_date), {})
        by[channel_name(w.channel)] = by.get(channel_name(w.channel), 0) + 1
    return [
        {"business_id": b, "date": d, "count": sum(by.values()), "by_channel": by}
        for (b, d), by in sorted(grouped.items())
    ]


def recovery_args(folder: Path, *, workers: int = 1) -> list[str]:
    """Arguments of a run that snapshots every second and keeps no extra history."""
    return ["-w", str(workers), "-r", str(folder), "-s", "1", "-b", "0"]


T = TypeVar("T")


def chunks(items: list[T], n: int) -> list[list[T]]:
    """Split a list into ``n`` consecutive parts of nearly equal size."""
    size = -(-len(items) // n)
    return [items[i * size : (i + 1) * size] for i in range(n)]


def wait_for(check: Callable[[], T | None], timeout_s: float = 90) -> T:
    """Poll until ``check()`` returns something truthy: waits for an event, not for a time.

    A check that reads a topic while a broker restarts may meet a transient Kafka error (not the
    partition's leader yet): that is a "not yet", tried again until the deadline.
    """
    deadline = time.monotonic() + timeout_s
    last_error: KafkaException | None = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except KafkaException as exc:
            if exc.args[0].fatal():
                raise
            last_error = exc
        time.sleep(0.2)
    msg = f"condition not met within {timeout_s}s"
    if last_error is not None:
        msg += f" (last Kafka error: {last_error})"
    raise AssertionError(msg)


WINDOW_NS = 7 * traffic.DAY
START_NS = time.time_ns() - 3 * traffic.DAY  # sample traffic covers the three days up to now


def assert_exact(deployment: Deployment, sample: traffic.Traffic) -> dict[str, object]:
    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    output = deployment.output()
    missing = sorted(set(expected) - set(output))
    extra = sorted(set(output) - set(expected))
    different = sorted(w for w in set(output) & set(expected) if output[w] != expected[w])
    assert output == expected, (
        f"{len(output)} vs {len(expected)} walkthroughs on the topic; missing {missing[:5]}, "
        f"extra {extra[:5]}, different {[(output[w], expected[w]) for w in different[:2]]}"
    )
    docs, counts = deployment.mongo()
    want = [to_mongo_doc(w) for _, w in sorted(expected.items())]
    wrong = [(d, w) for d, w in zip(docs, want, strict=False) if d != w]
    assert docs == want, f"{len(docs)} vs {len(want)} documents; first differences: {wrong[:2]}"
    assert counts == expected_counts(expected)
    dead = deployment.dead_letters()
    # At-least-once: a replayed epoch may report a bad record twice, never zero times.
    positions = {
        (r.headers["source_topic"], r.headers["source_partition"], r.headers["source_offset"])
        for r in dead
    }
    assert len(positions) == sample.bad
    assert all(r.headers["error"].split(b" ")[0] != b"late" for r in dead)
    return {"walkthroughs": len(expected), "dead_letters": len(dead)}


def ended(proc: subprocess.Popen[str], log: Path, timeout_s: float = 120) -> str:
    """Wait for a dataflow started in the background to exit by itself (killed if it does not
    within ``timeout_s``); return its log."""
    try:
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    return log.read_text()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""  # not listening (yet)


def scrape(port: int) -> dict[str, float]:
    _, text = get(f"http://127.0.0.1:{port}/metrics")
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("walkthroughs_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values
