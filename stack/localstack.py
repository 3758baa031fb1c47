"""Start, stop and inspect the local development stack: Apache Kafka (KRaft) and FerretDB.

There is no Docker on the development and CI machines, so the project brings its own servers:

* Apache Kafka 4.1.1, a single KRaft node (broker + controller). The jars come from Maven Central
  through ``stack/kafka/pom.xml``; we run ``kafka.Kafka`` on a classpath of those jars.
* FerretDB 1.24.2: a MongoDB wire-protocol server, built from the Go module proxy. The module zip
  lacks ``build/version/version.txt`` (FerretDB issue 2982), so we copy the module source, write
  that file and build ``./cmd/ferretdb`` ourselves.
* PostgreSQL (Debian's, 15 here), FerretDB's backend: a throwaway cluster of our own under
  ``.stack/postgres`` on a port of its own, never a server the user runs. It runs with
  ``fsync=off``: a crash of the machine may lose or corrupt its data, which is fine for a test
  server (docs/local-stack.md). PostgreSQL refuses to run as root, so when the stack runs as
  root (CI does) it runs as the ``postgres`` user. ``STACK_MONGO_BACKEND=sqlite`` runs FerretDB
  on SQLite instead (no PostgreSQL needed; a few hundred documents a second at best).

Built artefacts (the Kafka classpath, the FerretDB binary) are cached per version under
``$XDG_CACHE_HOME/walkthroughs-stack`` so that a fresh clone starts in seconds once the machine has
built them once. Data, logs and pid files live under ``.stack/`` in the repository (ignored by git).

Usage: ``python stack/localstack.py up|down|status``. ``up`` is idempotent and returns only when
both servers really answer (a Kafka produce/consume round trip and a MongoDB ``ping``), or fails
with the tail of the server's log. ``down`` stops exactly the processes that ``up`` started.

Settings (environment): ``STACK_DIR`` (.stack), ``STACK_KAFKA_PORT`` (9092),
``STACK_KAFKA_CONTROLLER_PORT`` (9093), ``STACK_MONGO_PORT`` (27017), ``STACK_PG_PORT`` (55432),
``STACK_MONGO_BACKEND`` (``postgresql`` or ``sqlite``), ``STACK_PG_BINDIR`` (the newest
``/usr/lib/postgresql/*/bin``), ``STACK_START_TIMEOUT_S`` (120).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

KAFKA_VERSION = "4.1.1"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"

REPO = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("STACK_DIR", REPO / ".stack")).resolve()
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "walkthroughs-stack"
KAFKA_PORT = int(os.environ.get("STACK_KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("STACK_KAFKA_CONTROLLER_PORT", "9093"))
MONGO_PORT = int(os.environ.get("STACK_MONGO_PORT", "27017"))
PG_PORT = int(os.environ.get("STACK_PG_PORT", "55432"))
MONGO_BACKEND = os.environ.get("STACK_MONGO_BACKEND", "postgresql")
PG_USER = "postgres"  # the OS user PostgreSQL runs as when we are root; also its superuser
START_TIMEOUT_S = float(os.environ.get("STACK_START_TIMEOUT_S", "120"))
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A server could not be built, started or stopped; the message says which and why."""


@dataclass(frozen=True)
class Server:
    """One server process of the stack: where its pid file and log live, how to tell it is ours."""

    name: str
    port: int
    cmdline_marker: str  # a string found in /proc/PID/cmdline of our process, guards pid reuse
    stop_signal: signal.Signals = signal.SIGTERM
    signal_group: bool = True  # False: signal only the server, which stops its own children

    @property
    def pid_file(self) -> Path:
        return STACK_DIR / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return STACK_DIR / "logs" / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """Return the pid from our pid file if that process is alive and is really ours."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        return pid if self.cmdline_marker in cmdline else None


KAFKA = Server("kafka", KAFKA_PORT, "kafka.Kafka")
FERRETDB = Server("ferretdb", MONGO_PORT, "ferretdb")
# SIGINT is PostgreSQL's fast shutdown; its own children must not be signalled behind its back.
POSTGRES = Server("postgres", PG_PORT, "bin/postgres", signal.SIGINT, signal_group=False)


@dataclass(frozen=True)
class RunAs:
    """Another OS user to run a command as (PostgreSQL's, when the stack runs as root)."""

    uid: int
    gid: int


class UserArgs(TypedDict):
    """The ``subprocess`` arguments that choose whom a child runs as."""

    user: int | None
    group: int | None
    extra_groups: list[int] | None


def as_user(user: RunAs | None) -> UserArgs:
    """``subprocess`` arguments that run a child as ``user`` (as ourselves when ``None``)."""
    if user is None:
        return UserArgs(user=None, group=None, extra_groups=None)
    return UserArgs(user=user.uid, group=user.gid, extra_groups=[])


def log(msg: str) -> None:
    print(f"[localstack] {msg}", flush=True)


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: RunAs | None = None,
) -> None:
    """Run a build command; on failure raise with its output so the caller sees why."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, **as_user(user)
    )
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr)[-4000:]
        raise StackError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")


# ---------------------------------------------------------------------------------------------
# Building (cached per version)
# ---------------------------------------------------------------------------------------------


def kafka_libs() -> Path:
    """Return the folder of broker jars, resolving it through Maven on first use."""
    libs = CACHE_DIR / f"kafka-{KAFKA_VERSION}" / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise StackError("Kafka needs `java` (17+) and `mvn` on PATH to fetch its jars")
    log(f"resolving Apache Kafka {KAFKA_VERSION} jars from Maven Central (first run only)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=libs.parent, prefix="libs-"))
    pom = REPO / "stack" / "kafka" / "pom.xml"
    run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
    )
    tmp.rename(libs)
    return libs


def ferretdb_binary() -> Path:
    """Return the FerretDB binary, building it from the Go module proxy on first use."""
    binary = CACHE_DIR / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise StackError("FerretDB is built from source: `go` (1.24+) must be on PATH")
    log(f"building FerretDB {FERRETDB_VERSION} from the Go module proxy (first run: minutes)")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise StackError(f"go mod download failed:\n{out.stdout}{out.stderr}")
    module_dir = Path(json.loads(out.stdout)["Dir"])
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(module_dir, src)
        for path in [src, *src.rglob("*")]:  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        # The file the module zip lacks (upstream issue 2982); its absence panics at start-up.
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        built = Path(tmp) / "ferretdb"
        run(
            ["go", "build", "-buildvcs=false", "-trimpath", "-o", str(built), "./cmd/ferretdb"],
            cwd=src,
            env=env,
        )
        built.rename(binary)
    return binary


# ---------------------------------------------------------------------------------------------
# Starting
# ---------------------------------------------------------------------------------------------


def port_open(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def spawn(
    server: Server, cmd: list[str], *, cwd: Path, user: RunAs | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own session (so `down` can signal its whole group), log to file."""
    if port_open(server.port):
        raise StackError(
            f"{server.name}: port {server.port} is already in use by a process this stack did not "
            f"start; stop it or choose another port (see stack/localstack.py settings)"
        )
    server.log_file.parent.mkdir(parents=True, exist_ok=True)
    server.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with server.log_file.open("ab") as logf:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **as_user(user),
        )
    server.pid_file.write_text(f"{proc.pid}\n")
    return proc


def log_tail(server: Server, lines: int = 40) -> str:
    try:
        text = server.log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


def kafka_properties(data_dir: Path) -> str:
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://{HOST}:{KAFKA_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.dedupe.buffer.size=16777216
log.retention.hours=-1
"""


def start_kafka() -> subprocess.Popen[bytes]:
    libs = kafka_libs()
    home = STACK_DIR / "kafka"
    data = home / "data"
    props = home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    props.write_text(kafka_properties(data))
    java = [
        "java",
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={REPO / 'stack' / 'kafka' / 'log4j2.xml'}",
        "-cp",
        f"{libs}/*",
    ]
    if not (data / "meta.properties").exists():
        cluster_id = kafka_cluster_id()
        log(f"formatting Kafka storage in {data}")
        run([*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)])
    proc = spawn(KAFKA, [*java, "kafka.Kafka", str(props)], cwd=home)
    log(f"kafka started (pid {proc.pid}), waiting for it to answer on {HOST}:{KAFKA_PORT}")
    return proc


def kafka_cluster_id() -> str:
    """A random KRaft cluster id that the storage tool's argument parser accepts.

    An id is 16 random bytes in URL-safe base64, so one in 64 starts with ``-`` and the tool's
    parser reads it as an option ("argument --cluster-id/-t: expected one argument"). Kafka's own
    ``Uuid.randomUuid`` draws again in that case; so do we.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


PG_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",  # TCP only: no socket path to own, none past its length limit
    # A throwaway test server: durability off. A crash of the machine may lose the data.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "shared_buffers": "128MB",
    "max_connections": "500",  # FerretDB's pool of 400, and room for psql
    "jit": "off",  # FerretDB's queries are short; compiling them only costs
    "log_min_messages": "warning",
}
"""The cluster's settings, passed on the command line so that they hold whatever the data folder
was initialised with."""


def pg_bindir() -> Path:
    """The folder of PostgreSQL's server programs (``initdb``, ``postgres``), the newest found."""
    configured = os.environ.get("STACK_PG_BINDIR")
    if configured:
        candidates = [Path(configured)]
    else:
        found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
        candidates = sorted(found, key=lambda p: int(p.parent.name), reverse=True)
        if shutil.which("postgres"):
            candidates.append(Path(str(shutil.which("postgres"))).parent)
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
    raise StackError(
        "PostgreSQL, FerretDB's backend, is not installed: `apt-get install postgresql` "
        "(or set STACK_PG_BINDIR to its bin folder, or STACK_MONGO_BACKEND=sqlite)"
    )


def pg_user() -> RunAs | None:
    """Who runs PostgreSQL: the ``postgres`` user when we are root (PostgreSQL refuses root),
    else ourselves (``None``)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        raise StackError(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: "
            "`apt-get install postgresql` creates it (or run the stack as another user)"
        ) from None
    return RunAs(entry.pw_uid, entry.pw_gid)


def pg_data_dir(user: RunAs | None) -> Path:
    """The cluster's data folder, created owned by ``user``.

    It is ``.stack/postgres/data``. When the ``postgres`` user cannot reach it (a clone under
    a private home folder), the data lives in a folder of the system's temporary folder named
    after the stack, and ``.stack/postgres/data`` is a link to it. Deleting ``.stack`` (``make
    clean-stack``) deletes the link; the next ``up`` finds the folder without it, deletes it as
    stale and starts a fresh cluster.
    """
    home = STACK_DIR / "postgres"
    home.mkdir(parents=True, exist_ok=True)
    data = home / "data"
    if user is not None and not data.is_symlink() and not reachable(home, user):
        digest = hashlib.sha256(str(STACK_DIR).encode()).hexdigest()[:12]
        outside = Path(tempfile.gettempdir()) / f"walkthroughs-stack-{digest}-postgres"
        shutil.rmtree(outside, ignore_errors=True)  # stale: its link was deleted
        outside.mkdir(mode=0o700)
        os.chown(outside, user.uid, user.gid)
        data.symlink_to(outside)
        log(f"postgres: {home} is out of the {PG_USER} user's reach, its data is in {outside}")
    if not data.exists():
        data.mkdir(mode=0o700)
        if user is not None:
            os.chown(data, user.uid, user.gid)
    return data.resolve()  # PostgreSQL's programs must not go through a folder they cannot enter


def reachable(folder: Path, user: RunAs) -> bool:
    """Whether ``user`` may enter ``folder`` (every folder above it included)."""
    probe = subprocess.run(["test", "-x", str(folder)], check=False, **as_user(user))
    return probe.returncode == 0


def start_postgres() -> subprocess.Popen[bytes]:
    bindir, user = pg_bindir(), pg_user()
    data = pg_data_dir(user)
    if not (data / "PG_VERSION").exists():
        log(f"initialising a PostgreSQL cluster in {data}")
        for leftover in data.iterdir():  # an initdb cut short; initdb wants an empty folder
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        run(
            [
                str(bindir / "initdb"),
                f"--pgdata={data}",
                f"--username={PG_USER}",
                "--auth=trust",  # listens on 127.0.0.1 only
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            user=user,
        )
    settings = [arg for key, value in PG_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    cmd = [str(bindir / "postgres"), "-D", str(data), "-p", str(PG_PORT), *settings]
    proc = spawn(POSTGRES, cmd, cwd=data, user=user)
    log(f"postgres started (pid {proc.pid}), waiting for it to answer on {HOST}:{PG_PORT}")
    return proc


def ferretdb_command(backend: list[str], port: int, *extra: str) -> list[str]:
    """The FerretDB command line serving ``backend`` (its handler flags) on ``port``."""
    return [
        str(ferretdb_binary()),
        *backend,
        f"--listen-addr={HOST}:{port}",
        "--state-dir=-",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
        *extra,
    ]


def sqlite_backend(data: Path) -> list[str]:
    """FerretDB's flags for the SQLite folder ``data``."""
    data.mkdir(parents=True, exist_ok=True)
    return ["--handler=sqlite", f"--sqlite-url=file:{data}/"]


def postgresql_backend() -> list[str]:
    """FerretDB's flags for our PostgreSQL cluster.

    FerretDB keeps each MongoDB database as a schema of the PostgreSQL database ``postgres``.
    Its pool must outgrow the requests it serves at once: FerretDB 1.24 deadlocks when the pool
    runs dry (a request holding the metadata lock waits for a connection that requests waiting
    for that lock hold). With pgx's default of 50 the hot-key test hung it every time; the
    pool opens connections only as it needs them, within the cluster's ``max_connections``.
    """
    url = f"postgres://{PG_USER}@{HOST}:{PG_PORT}/postgres?pool_max_conns=400"
    return ["--handler=postgresql", f"--postgresql-url={url}"]


def start_ferretdb() -> subprocess.Popen[bytes]:
    home = STACK_DIR / "ferretdb"
    home.mkdir(parents=True, exist_ok=True)
    if MONGO_BACKEND == "postgresql":
        backend = postgresql_backend()
    else:
        backend = sqlite_backend(home / "data")
    proc = spawn(FERRETDB, ferretdb_command(backend, MONGO_PORT), cwd=home)
    log(f"ferretdb started (pid {proc.pid}), waiting for it to answer on {HOST}:{MONGO_PORT}")
    return proc


def start_ferretdb_with_auth(
    home: Path, port: int, user: str, password: str
) -> subprocess.Popen[bytes]:
    """Start a second FerretDB that requires SCRAM credentials (for the tests of bad
    credentials); the caller owns the process. Returns once it answers ``ping``.

    It keeps its users in a SQLite folder of its own: FerretDB's PostgreSQL handler would share
    the stack's cluster and its user table, and this server lives only as long as a test."""
    cmd = ferretdb_command(
        sqlite_backend(home / "data"),
        port,
        "--test-enable-new-auth",
        "--setup-database=admin",
        f"--setup-username={user}",
        f"--setup-password={password}",
    )
    with (home / "ferretdb.log").open("ab") as logf:
        proc = subprocess.Popen(cmd, cwd=home, stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise StackError(f"ferretdb with auth did not start on {port}")
        time.sleep(0.1)
    return proc


def pause(server: Server) -> None:
    """Freeze a running server (SIGSTOP): it keeps its sockets but answers nothing."""
    pid = server.running_pid()
    if pid is None:
        raise StackError(f"{server.name} is not running")
    os.killpg(pid, signal.SIGSTOP)


def resume(server: Server) -> None:
    """Let a server frozen by ``pause`` run again (SIGCONT)."""
    pid = server.running_pid()
    if pid is not None:
        os.killpg(pid, signal.SIGCONT)


# ---------------------------------------------------------------------------------------------
# Readiness: the servers must really work, not just listen
# ---------------------------------------------------------------------------------------------


def kafka_answers() -> None:
    """Produce one record to a scratch topic and consume it back, or raise."""
    from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = f"{HOST}:{KAFKA_PORT}"
    topic = "_localstack_ready"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1)],
        operation_timeout=10,
        request_timeout=10,
    )
    try:
        futures[topic].result(timeout=15)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise
    token = uuid.uuid4().hex.encode()
    delivered: list[Message] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
    producer.produce(topic, value=token, on_delivery=lambda err, msg: delivered.append(msg))
    if producer.flush(15) != 0 or not delivered or delivered[0].error() is not None:
        raise StackError("kafka: produce not acknowledged")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "localstack-ready",
            "enable.auto.commit": False,
        }
    )
    try:  # assign, not subscribe: no group rebalance, straight to the offset just written
        consumer.assign([TopicPartition(topic, 0, delivered[0].offset())])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.value() == token:
                return
        raise StackError("kafka: produced record was not consumed back")
    finally:
        consumer.close()


def ferretdb_answers() -> None:
    """Ping the MongoDB-wire server and round-trip one document, or raise."""
    import pymongo

    client: pymongo.MongoClient = pymongo.MongoClient(
        f"mongodb://{HOST}:{MONGO_PORT}", serverSelectionTimeoutMS=2000
    )
    try:
        client.admin.command("ping")
        coll = client["localstack"]["ready"]
        coll.replace_one({"_id": "ready"}, {"_id": "ready", "at": time.time()}, upsert=True)
        if coll.find_one({"_id": "ready"}) is None:
            raise StackError("ferretdb: written document not found")
    finally:
        client.close()


def postgres_answers() -> None:
    """Ask PostgreSQL whether it accepts connections (``pg_isready``), or raise."""
    run([str(pg_bindir() / "pg_isready"), "-q", "-h", HOST, "-p", str(PG_PORT), "-U", PG_USER])


CHECKS = {
    KAFKA.name: kafka_answers,
    FERRETDB.name: ferretdb_answers,
    POSTGRES.name: postgres_answers,
}


def wait_ready(server: Server, proc: subprocess.Popen[bytes] | None) -> None:
    """Wait until the server answers; ``proc`` is set when we just started it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        # A process we just forked shows its parent's command line until it execs, so ask
        # the Popen object, not /proc, whether it is still alive.
        alive = proc.poll() is None if proc is not None else server.running_pid() is not None
        if not alive:
            raise StackError(f"{server.name} exited during start-up; log tail:\n{log_tail(server)}")
        if port_open(server.port):
            try:
                CHECKS[server.name]()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = exc
        time.sleep(0.5)
    raise StackError(
        f"{server.name} did not answer within {START_TIMEOUT_S:.0f}s "
        f"(last error: {last_error}); log tail:\n{log_tail(server)}"
    )


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def servers() -> tuple[Server, ...]:
    """The stack's servers in start order (each after what it needs)."""
    if MONGO_BACKEND == "postgresql":
        return (KAFKA, POSTGRES, FERRETDB)
    return (KAFKA, FERRETDB)


STARTERS = {
    KAFKA.name: start_kafka,
    POSTGRES.name: start_postgres,
    FERRETDB.name: start_ferretdb,
}


def up() -> None:
    """Start what is not running, FerretDB once its backend answers; wait until all answer.

    Kafka, the slowest to start, is waited for last so that its start overlaps the others'.
    """
    if MONGO_BACKEND not in ("postgresql", "sqlite"):
        raise StackError(f"STACK_MONGO_BACKEND must be postgresql or sqlite, not {MONGO_BACKEND!r}")
    started = time.monotonic()
    spawned: dict[str, subprocess.Popen[bytes]] = {}
    for server in servers():
        if server.running_pid() is None:
            spawned[server.name] = STARTERS[server.name]()
        else:
            log(f"{server.name} already running (pid {server.running_pid()})")
        if server is not KAFKA:
            wait_ready(server, spawned.get(server.name))
            log(f"{server.name} answers on {HOST}:{server.port}")
    wait_ready(KAFKA, spawned.get(KAFKA.name))
    log(f"{KAFKA.name} answers on {HOST}:{KAFKA.port}")
    log(f"stack up in {time.monotonic() - started:.1f}s")


def stop(server: Server, timeout_s: float = 30) -> None:
    pid = server.running_pid()
    if pid is None:
        server.pid_file.unlink(missing_ok=True)
        log(f"{server.name} not running")
        return
    if server.signal_group:
        os.killpg(pid, server.stop_signal)
    else:
        os.kill(pid, server.stop_signal)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.running_pid() is not None:
        time.sleep(0.2)
    if server.running_pid() is not None:
        log(f"{server.name} ignored {server.stop_signal.name} for {timeout_s:.0f}s, killing it")
        os.killpg(pid, signal.SIGKILL)
        while server.running_pid() is not None:
            time.sleep(0.1)
    server.pid_file.unlink(missing_ok=True)
    log(f"{server.name} stopped (pid {pid})")


def down() -> None:
    """Stop every server this stack may have started, dependents first (whatever the backend
    setting is now: a server started under another one is stopped too)."""
    for server in (FERRETDB, POSTGRES, KAFKA):
        stop(server)


def status() -> int:
    """Print what runs; exit 0 only if every server of the stack runs and listens."""
    healthy = True
    for server in servers():
        pid = server.running_pid()
        if pid is None:
            state, healthy = "stopped", False
        elif port_open(server.port):
            state = f"running (pid {pid}), listening on {HOST}:{server.port}"
        else:
            state, healthy = f"running (pid {pid}) but not listening on {server.port}", False
        log(f"{server.name}: {state}; log {server.log_file}")
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "build":
            log(f"kafka jars: {kafka_libs()}")
            log(f"ferretdb binary: {ferretdb_binary()}")
            if MONGO_BACKEND == "postgresql":
                log(f"postgresql programs: {pg_bindir()}")
        else:
            return status()
    except StackError as exc:
        print(f"[localstack] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
