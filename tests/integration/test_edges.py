"""Hostile and broken inputs at the edges, on the real stack: poison pills, secrets in every form,
settings that only the outside world can refute."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import NamedTuple
from urllib.parse import quote_plus

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests.conftest import MONGO_URI
from tests.integration.conftest import localstack
from tests.integration.dataflow_harness import (
    START_NS,
    WINDOW_NS,
    Deployment,
    assert_exact,
    ended,
    expected_counts,
    get,
    recovery_args,
    scrape,
    wait_for,
)
from tests.reference import expected_walkthroughs
from walkthroughs.testing.ports import free_ports
from walkthroughs.testing.recovery import init_recovery
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import Record, ensure_topics
from walkthroughs.wire.codec import encode_message, encode_walkin, local_date, to_mongo_doc
from walkthroughs.wire.schema import MessageEvent, WalkInEvent

GARBAGE_BYTES = 5_000_000  # five times a producer's default message.max.bytes
LONG_ID = "x" * 600_000  # a walkthrough of two such ids would be a 1.2 MB record
ZONED = WalkInEvent("w-zone", "b-z", "c", "", START_NS + traffic.DAY, "")


def produce_compressed(deployment: Deployment, suffix: str, key: bytes, value: bytes) -> None:
    """Produce one record the way a careless producer can: larger than the 1 MB record limit,
    accepted by the broker because it compressed it far below its batch limit."""
    producer = Producer(
        {
            "bootstrap.servers": deployment.bootstrap,
            "message.max.bytes": 10_000_000,
            "compression.type": "lz4",
        }
    )
    failures: list[object] = []
    producer.produce(
        deployment.topic(suffix),
        value,
        key,
        on_delivery=lambda e, _m: failures.append(e) if e else None,
    )
    assert producer.flush(30) == 0
    assert not failures


def by_error(dead: list[Record]) -> dict[str, Record]:
    return {r.headers["error"].decode().split(":")[0]: r for r in dead}


def test_poison_pills_neither_stop_the_dataflow_nor_vanish(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A 5 MB compressed garbage record, a valid pair whose ids are 600 kB, and a walk-in in a
    zone the host has but the pinned tzdata lacks, among normal traffic."""
    sample = traffic.generate(seed=21, businesses=4, customers=500, start_ns=START_NS)
    deployment.feed(sample)
    produce_compressed(deployment, "m", b"garbage", b"\xff" * GARBAGE_BYTES)
    at = START_NS + traffic.DAY
    deployment.produce(
        "m", [(b"long", encode_message(MessageEvent(LONG_ID, "b-long", "c", at - 1, 1, "")))]
    )
    deployment.produce(
        "w",
        [
            (b"long", encode_walkin(WalkInEvent(LONG_ID, "b-long", "c", "loc", at, ""))),
            (
                b"zone",
                encode_walkin(WalkInEvent("w-zone", "b-z", "c", "", at, ""), timezone="right/UTC"),
            ),
        ],
    )
    recovery = init_recovery(tmp_path / "recovery", 2)
    run = deployment.run(*recovery_args(recovery, workers=2))
    assert run.returncode == 0, run.stderr[-3000:]
    again = deployment.run(*recovery_args(recovery, workers=2))  # a restart does not fail again
    assert again.returncode == 0, again.stderr[-3000:]

    sample.bad += 4  # the four records above are bad records too; everything else is exact
    assert_exact(deployment, sample)
    dead = by_error(deployment.dead_letters())
    garbage = dead["undecodable ZenreachMessage"]
    assert garbage.key == b"garbage"
    assert garbage.headers["value_truncated"] == str(GARBAGE_BYTES).encode()
    assert 900_000 < len(garbage.value or b"") < 1_000_000
    assert garbage.value == b"\xff" * len(garbage.value or b"")  # a prefix of the original
    long_ids = [r for r in deployment.dead_letters() if r.key == b"long"]
    assert sorted(r.headers["error"].decode() for r in long_ids) == [
        "id too long message_id: 600000 bytes, at most 1024",
        "id too long walkin_id: 600000 bytes, at most 1024",
    ]
    assert all("value_truncated" not in r.headers for r in long_ids)  # they fit as they are
    assert dead["invalid timezone 'right/UTC'"].key == b"zone"


# --- secrets -------------------------------------------------------------------------------

PLANTED = "Pl4nted-Secr3t"  # every piece of it between separators is long enough to scrub


class AuthMongo(NamedTuple):
    host: str  # host:port
    pid: int


@pytest.fixture(scope="module")
def auth_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMongo]:
    """A second MongoDB-wire server that requires credentials: user ``svc``, password
    ``PLANTED`` (the shared stack's server accepts no credentials at all)."""
    (port,) = free_ports(1)
    proc = localstack().start_ferretdb_with_auth(
        tmp_path_factory.mktemp("auth-mongo"), port, "svc", PLANTED
    )
    try:
        yield AuthMongo(f"127.0.0.1:{port}", proc.pid)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=30)


def uri_cases(host: str, open_host: str) -> list[tuple[str, dict[str, str]]]:
    """Every form a MongoDB URI or a Kafka setting can carry a secret in (``host`` requires
    credentials, ``open_host`` takes none)."""
    quoted = quote_plus(PLANTED + "/x@y:z")
    return [
        ("userinfo-slash", {"WALKTHROUGHS_MONGO_URI": f"mongodb://svc:{PLANTED}/xx@{host}/"}),
        ("userinfo-at", {"WALKTHROUGHS_MONGO_URI": f"mongodb://svc:{PLANTED}@xx@{host}/"}),
        ("userinfo-colon", {"WALKTHROUGHS_MONGO_URI": f"mongodb://svc:{PLANTED}:xx@{host}/"}),
        ("userinfo-question", {"WALKTHROUGHS_MONGO_URI": f"mongodb://svc:{PLANTED}?x@{host}/"}),
        ("wrong-password-encoded", {"WALKTHROUGHS_MONGO_URI": f"mongodb://svc:{quoted}@{host}/"}),
        ("password-only", {"WALKTHROUGHS_MONGO_URI": f"mongodb://{PLANTED}@{host}/"}),
        (
            "aws-session-token",
            {
                "WALKTHROUGHS_MONGO_URI": f"mongodb://{host}/?authMechanism=MONGODB-AWS"
                f"&authMechanismProperties=AWS_SESSION_TOKEN:{PLANTED}"
            },
        ),
        (
            "key-file-password",
            {
                "WALKTHROUGHS_MONGO_URI": f"mongodb://{host}/?tls=true&tlsCertificateKeyFile="
                f"/nonexistent.pem&tlsCertificateKeyFilePassword={PLANTED}"
            },
        ),
        (
            "token-option",
            {"WALKTHROUGHS_MONGO_URI": f"mongodb://{open_host}/?myTokenHere={PLANTED}"},
        ),
        ("malformed-port", {"WALKTHROUGHS_MONGO_URI": f"mongodb://svc:{PLANTED}@{host}:xx/"}),
        (
            "kafka-sasl",
            {
                "WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "WALKTHROUGHS_KAFKA_SASL_MECHANISM": "PLAIN",
                "WALKTHROUGHS_KAFKA_SASL_USERNAME": "svc",
                "WALKTHROUGHS_KAFKA_SASL_PASSWORD": PLANTED,
            },
        ),
        (
            "kafka-ssl-key",
            {
                "WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL": "SSL",
                "WALKTHROUGHS_KAFKA_SSL_KEY_PEM": f"-----BEGIN {PLANTED}-----",
                "WALKTHROUGHS_KAFKA_SSL_KEY_PASSWORD": PLANTED + "2",
            },
        ),
        (
            "kafka-oauth-secret",
            {
                "WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "WALKTHROUGHS_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "WALKTHROUGHS_KAFKA_SASL_OAUTHBEARER_CONFIG": f"principal=svc secret={PLANTED}",
            },
        ),
    ]


def leaked(text: str) -> list[str]:
    """The pieces of the planted secret (and its encodings) that appear in ``text``."""
    pieces = {PLANTED, quote_plus(PLANTED), *PLANTED.split("-")}
    return sorted(p for p in pieces if len(p) >= 4 and p in text)


def test_secrets_never_reach_a_line_in_any_form(
    deployment: Deployment, auth_mongo: AuthMongo
) -> None:
    """Each form, through the real entry point (start-up, settings line, errors, tracebacks) and
    through ``doctor``: no line holds a piece of the secret; the secret settings are named."""
    deployment.feed(traffic.generate(seed=22, businesses=2, customers=50, start_ns=START_NS))
    open_host = MONGO_URI.removeprefix("mongodb://").split("/")[0]
    for name, case in uri_cases(auth_mongo.host, open_host):
        env = {"WALKTHROUGHS_STARTUP_TIMEOUT": "3s", "WALKTHROUGHS_LOG_LEVEL": "DEBUG", **case}
        run = deployment.run(timeout_s=120, env=env)
        doctor = deployment.cli("doctor", env=env)
        for what, proc in (("dataflow", run), ("doctor", doctor)):
            text = proc.stdout + proc.stderr
            assert not leaked(text), f"{name}: {what} printed {leaked(text)}:\n{text[-3000:]}"
            assert "Traceback" not in text, f"{name}: {what}:\n{text[-3000:]}"
        if name == "token-option":  # a valid URI: the service ran, its settings line redacted
            assert run.returncode == 0, run.stderr[-3000:]
            assert "myTokenHere=***" in run.stderr
        else:
            assert run.returncode != 0, f"{name}: the service started"
        assert doctor.returncode != 0 or name == "token-option", doctor.stdout


def test_a_stalled_sink_error_with_credentials_leaks_nothing(
    deployment: Deployment, auth_mongo: AuthMongo, tmp_path: Path
) -> None:
    """Credentials accepted at start-up, then the server stops answering mid-run: the retries
    and the error that stops the worker, logged at DEBUG, hold no piece of the password."""
    sample = traffic.generate(seed=23, businesses=2, customers=200, start_ns=START_NS)
    uri = f"mongodb://svc:{quote_plus(PLANTED)}@{auth_mongo.host}/?authSource=admin"
    log = tmp_path / "run.log"
    proc = deployment.start(
        log=log,
        WALKTHROUGHS_MONGO_URI=uri,
        WALKTHROUGHS_MONGO_RETRY_LIMIT="2s",
        WALKTHROUGHS_MONGO_TIMEOUT="1s",
        WALKTHROUGHS_HOLD="3s",
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_LOG_LEVEL="DEBUG",
    )
    try:
        deployment.feed(sample)
        wait_for(lambda: len(deployment.dead_letters()) >= sample.bad)  # started, reading
        os.kill(auth_mongo.pid, signal.SIGSTOP)  # stalls before the first decision
    finally:
        try:
            text = ended(proc, log)
        finally:
            os.kill(auth_mongo.pid, signal.SIGCONT)
    assert proc.returncode != 0
    assert "mongo_retry" in text
    assert "MongoDB unavailable for 2s" in text
    assert f"svc:***@{auth_mongo.host}" in text  # the settings line, redacted
    assert not leaked(text), leaked(text)


# --- settings only the outside world can refute ---------------------------------------------


def startup_cases(d: Deployment, auth: AuthMongo) -> list[tuple[str, dict[str, str], str]]:
    wrong = f"mongodb://svc:wrong-{PLANTED}@{auth.host}/?authSource=admin"
    return [
        (
            "mongo-unreachable",
            {"WALKTHROUGHS_MONGO_URI": "mongodb://127.0.0.1:1/"},
            "cannot reach MongoDB at mongodb://127.0.0.1:1/ within 2s (WALKTHROUGHS_MONGO_URI",
        ),
        ("mongo-bad-credentials", {"WALKTHROUGHS_MONGO_URI": wrong}, "authentication failed"),
        (
            "mongo-no-credentials",
            {"WALKTHROUGHS_MONGO_URI": f"mongodb://{auth.host}/"},
            "the user is not authorized on database",
        ),
        (
            "mongo-malformed",
            {"WALKTHROUGHS_MONGO_URI": f"mongodb://{auth.host}:x/"},
            "WALKTHROUGHS_MONGO_URI='mongodb://127.0.0.1",
        ),
        (
            "kafka-bogus-protocol",
            {"WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL": "BOGUS"},
            "WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL is rejected by the Kafka client: Invalid value",
        ),
        (
            "output-topic-missing",
            {"WALKTHROUGHS_OUTPUT_TOPIC": d.topic("nope")},
            f"output topic (WALKTHROUGHS_OUTPUT_TOPIC) '{d.topic('nope')}' cannot be used",
        ),
        (
            "dlq-topic-missing",
            {"WALKTHROUGHS_DLQ_TOPIC": d.topic("nodlq")},
            f"dead-letter topic (WALKTHROUGHS_DLQ_TOPIC) '{d.topic('nodlq')}' cannot be used",
        ),
        (
            "output-topic-too-small",
            {"WALKTHROUGHS_OUTPUT_TOPIC": d.topic("small")},
            f"(WALKTHROUGHS_OUTPUT_TOPIC) '{d.topic('small')}' takes records of at most 3060 bytes",
        ),
        (
            "bootstrap-port",
            {"WALKTHROUGHS_KAFKA_BOOTSTRAP": "127.0.0.1:99999"},
            "port 99999 of '127.0.0.1:99999' is out of range: use 1 to 65535",
        ),
        (
            "message-timeout-zero",
            {"WALKTHROUGHS_KAFKA_MESSAGE_TIMEOUT_MS": "0"},
            "WALKTHROUGHS_KAFKA_MESSAGE_TIMEOUT_MS='0' is out of range",
        ),
        (
            "flush-overflows-dates",
            {"WALKTHROUGHS_FLUSH_INTERVAL": "100000d"},
            "WALKTHROUGHS_FLUSH_INTERVAL=100000d is out of range: use a duration from 1ms to 1h",
        ),
    ]


def test_a_bad_setting_fails_at_startup_in_one_line_naming_it(
    deployment: Deployment, auth_mongo: AuthMongo
) -> None:
    """Before: silence until the first walkthrough, or a 100-line traceback after 126 s."""
    small = deployment.topic("small")
    ensure_topics(deployment.kafka, {small: 1}, configs={small: {"max.message.bytes": "4096"}})
    try:
        for name, env, message in startup_cases(deployment, auth_mongo):
            started = time.monotonic()
            run = deployment.run(timeout_s=60, env=env, WALKTHROUGHS_STARTUP_TIMEOUT="2s")
            elapsed = time.monotonic() - started
            lines = [line for line in run.stderr.splitlines() if not line.startswith("{")]
            assert run.returncode != 0, f"{name} started"
            assert lines == [lines[0]], f"{name}: not one line:\n{run.stderr[-3000:]}"
            assert lines[0].startswith("walkthroughs: cannot start: "), lines
            assert message in lines[0], f"{name}: {lines[0]}"
            assert elapsed < 20, f"{name} took {elapsed:.0f}s"
            doctor = deployment.cli("doctor", env=env, WALKTHROUGHS_STARTUP_TIMEOUT="2s")
            assert doctor.returncode == 1, f"{name}: {doctor.stdout}"
            assert "Traceback" not in doctor.stdout + doctor.stderr, doctor.stderr
            assert message[:40] in doctor.stdout, f"{name}: {doctor.stdout}"
    finally:
        admin = AdminClient(dict(deployment.kafka))
        admin.delete_topics([small])[small].result(timeout=30)


# --- one walk-in id under two customers ------------------------------------------------------


def reused_ids(n: int) -> tuple[list[object], list[object]]:
    """``n`` ids, each used by a walk-in of (b-first, c-i) and then of (b-second, c-i), both
    credited by a message of their own customer."""
    at = START_NS + traffic.DAY
    date = local_date(at, "")  # START_NS follows the clock: so does the day
    first: list[object] = []
    second: list[object] = []
    for i in range(n):
        for events, business, channel in ((first, "b-first", 1), (second, "b-second", 2)):
            events.append(MessageEvent(f"m-{business}-{i}", business, f"c{i}", at - i, channel, ""))
            events.append(WalkInEvent(f"shared-{i}", business, f"c{i}", "", at, date))
    return first, second


def produce_events(deployment: Deployment, events: list[object]) -> None:
    messages = [
        (e.message_id.encode(), encode_message(e)) for e in events if isinstance(e, MessageEvent)
    ]
    # Walk-ins keyed by a rotating location, as their producers do: many partitions.
    walkins = [e for e in events if isinstance(e, WalkInEvent)]
    deployment.produce("m", messages)
    deployment.produce(
        "w", [(f"loc-{i % 7}".encode(), encode_walkin(e)) for i, e in enumerate(walkins)]
    )


def assert_outputs_agree(deployment: Deployment) -> None:
    """The output topic's latest record per id is the MongoDB document; counts = collection."""
    latest = deployment.output()
    docs, counts = deployment.mongo()
    by_id = {d.pop("_id"): d for d in docs}
    for d in by_id.values():
        d.pop("moved_from", None)  # where a moved document came from: not a Walkthrough field
    assert by_id == {
        i: {k: v for k, v in to_mongo_doc(w).items() if k != "_id"} for i, w in latest.items()
    }
    assert counts == expected_counts(latest)


def test_a_walkin_id_reused_by_another_customer_is_dead_lettered_and_outputs_agree(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Before: one MongoDB document, a count under each business, and Kafka holding whichever
    worker wrote last. Now the first owner keeps the id; a replay from nothing may choose the
    other, and then both outputs follow it (the old owner's day recounted)."""
    sample = traffic.generate(seed=24, businesses=3, customers=300, start_ns=START_NS)
    deployment.feed(sample)
    first, second = reused_ids(20)
    produce_events(deployment, first)
    recovery = init_recovery(tmp_path / "recovery", 2)
    assert deployment.run(*recovery_args(recovery, workers=2)).returncode == 0
    produce_events(deployment, second)  # read later: their ids are already claimed
    run = deployment.run(*recovery_args(recovery, workers=2))
    assert run.returncode == 0, run.stderr[-3000:]

    expected = expected_walkthroughs([*sample.events, *first], WINDOW_NS)
    assert deployment.output() == expected
    docs, counts = deployment.mongo()
    assert docs == [to_mongo_doc(w) for _, w in sorted(expected.items())]
    assert counts == expected_counts(expected)
    reused = [r for r in deployment.dead_letters() if b"walkin_id reused" in r.headers["error"]]
    assert len(reused) == 20
    assert all(r.headers["source_topic"].decode() == deployment.topic("w") for r in reused)

    # A replay from nothing, with another worker count: either owner may come first now.
    replay = deployment.run("-w", "3")
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert_outputs_agree(deployment)
    owners = {w.business_id for i, w in deployment.output().items() if i.startswith("shared-")}
    assert owners <= {"b-first", "b-second"}


# --- a stalled server ------------------------------------------------------------------------

PAUSE_S = 120  # MongoDB frozen this long under steady input
GRACE_S = 60  # the StatefulSet's terminationGracePeriodSeconds


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    msg = f"no VmRSS for {pid}"
    raise AssertionError(msg)


class Seen(NamedTuple):
    """One scrape during the pause: what a Prometheus and a kubelet would see."""

    at_s: float
    lag: float
    stalled_s: float
    rss_mib: float
    ready: int  # /ready's status


@contextmanager
def steady_input(deployment: Deployment, sample: traffic.Traffic) -> Iterator[None]:
    """Produce the sample over and over, ~2,000 records a second, until the block ends
    (repeats are duplicates: the exact result stays the sample's)."""
    records = [("m", r) for r in sample.messages] + [("w", r) for r in sample.walkins]
    producer = Producer({"bootstrap.servers": deployment.bootstrap, "linger.ms": 20})
    done = threading.Event()

    def feed() -> None:
        while not done.is_set():
            for i in range(0, len(records), 200):
                if done.wait(0.1):
                    return
                for suffix, (key, value) in records[i : i + 200]:
                    producer.produce(deployment.topic(suffix), value, key)
                producer.poll(0)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        done.set()
        feeder.join(timeout=60)
        assert producer.flush(30) == 0


def watch(api_port: int, ready_url: str, pid: int, seconds: float) -> list[Seen]:
    started = time.monotonic()
    seen = []
    while (elapsed := time.monotonic() - started) < seconds:
        m = scrape(api_port)
        lag = sum(v for k, v in m.items() if k.startswith("walkthroughs_consumer_lag{"))
        stalled = m.get("walkthroughs_stalled_seconds", 0.0)
        seen.append(Seen(elapsed, lag, stalled, rss_mib(pid), get(ready_url)[0]))
        time.sleep(5)  # a scrape interval: the figures are what a Prometheus would see
    return seen


def test_a_stalled_mongodb_shows_in_lag_and_readiness_bounds_memory_and_the_stop(
    deployment: Deployment, stack: ModuleType, tmp_path: Path
) -> None:
    """MongoDB frozen (SIGSTOP) for two minutes under steady input. Before: lag read 0 on every
    partition and the probes passed; a SIGTERM took 405 s to end the process."""
    sample = traffic.generate(seed=25, businesses=4, customers=1500, start_ns=START_NS)
    recovery = init_recovery(tmp_path / "recovery", 2)
    api, ready_port = free_ports(2)
    ready_url = f"http://127.0.0.1:{ready_port}/ready"
    proc = deployment.start(
        *("-w", "2", "-r", str(recovery), "-s", "5", "-b", "0"),  # epochs as in k8s
        log=tmp_path / "live.log",
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_HOLD="0",
        WALKTHROUGHS_MONGO_RETRY_LIMIT="10m",
        WALKTHROUGHS_HEALTH_PORT=str(ready_port),
        WALKTHROUGHS_STALL_LIMIT="15s",
        BYTEWAX_DATAFLOW_API_ENABLED="1",
        BYTEWAX_DATAFLOW_API_PORT=str(api),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
    )
    try:
        with steady_input(deployment, sample):
            wait_for(lambda: get(ready_url)[0] == 200 and len(deployment.mongo()[0]) > 50)
            stack.pause(stack.FERRETDB)
            seen = watch(api, ready_url, proc.pid, PAUSE_S)
            assert proc.poll() is None, "the dataflow waited for MongoDB"
            stopping_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)  # under load, with the server still frozen
            proc.wait(timeout=GRACE_S + 30)
            stop_s = time.monotonic() - stopping_at
    finally:
        stack.resume(stack.FERRETDB)
        if proc.poll() is None:
            proc.kill()
    report = {"seen": [s._asdict() for s in seen], "stop_s": round(stop_s, 1)}
    print(report)  # the figures, for the record (pytest -s)
    early = [s for s in seen if 20 <= s.at_s < 35]
    late = [s for s in seen if s.at_s >= PAUSE_S - 15]
    assert early, report
    assert late, report
    assert min(s.lag for s in late) > max(s.lag for s in early) + 5000, report  # keeps growing
    assert min(s.stalled_s for s in late) > PAUSE_S - 30, report
    assert all(s.ready == 503 for s in seen if s.at_s > 25), report  # not ready while stalled
    assert max(s.rss_mib for s in late) - min(s.rss_mib for s in early) < 40, report  # flat
    assert stop_s < GRACE_S, report

    final = deployment.run(*recovery_args(recovery, workers=2))
    assert final.returncode == 0, final.stderr[-3000:]
    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert deployment.output() == expected
    docs, counts = deployment.mongo()
    assert docs == [to_mongo_doc(w) for _, w in sorted(expected.items())]
    assert counts == expected_counts(expected)
