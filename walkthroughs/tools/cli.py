"""``python -m walkthroughs``: operator and developer commands around the dataflow.

Settings (bootstrap servers, topics, MongoDB) come from the same ``WALKTHROUGHS_*`` environment
as the dataflow, so a command always talks to what the service uses. ``--help`` everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pymongo
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from walkthroughs.attribution import erasure_reference
from walkthroughs.errors import WalkthroughsError
from walkthroughs.runtime import logs, redaction
from walkthroughs.runtime.config import (
    OUTPUT_FORMATS,
    Settings,
    environment_secrets_of,
    parse_duration,
)
from walkthroughs.runtime.output_schema import output_schema_id
from walkthroughs.runtime.redaction import Redactor, redact_uri, scrub
from walkthroughs.runtime.startup import check_kafka, check_kafka_clients, topic_roles
from walkthroughs.runtime.startup_mongo import check_mongo
from walkthroughs.sinks.mongo import COUNTS, WALKTHROUGHS
from walkthroughs.tools import traffic
from walkthroughs.tools.cli_dlq import dlq
from walkthroughs.tools.cli_support import console, instant, reports_errors, settings_from_env
from walkthroughs.tools.dead_letters import reason_of
from walkthroughs.tools.topics import (
    copy_time_range,
    describe_topics,
    ensure_topics,
    iter_slice,
    produce,
    slice_topic,
)
from walkthroughs.wire.codec import MAX_ID_BYTES, MESSAGE_INDEXES, WALKIN_INDEXES
from walkthroughs.wire.erasure_requests import encode_request

# Partition counts of `topics create` and `generate --create-topics`: deliberately different
# per topic, since the service never needs co-partitioned inputs.
DEFAULT_PARTITIONS = {
    "messages": 3,
    "messages_backfill": 2,
    "walkins": 5,
    "walkins_backfill": 1,
    "output": 3,
    "dlq": 1,
    "erasures": 1,
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate the walkthroughs service (settings from the WALKTHROUGHS_* environment)."""
    secrets = environment_secrets_of(os.environ)
    redaction.install(Redactor(secrets))
    logs.configure("WARNING", logs.PlainFormatter())  # e.g. the Kafka clients' (kafka_logs)


# --- topics -------------------------------------------------------------------------------


def _topic_plan(settings: Settings) -> dict[str, int]:
    plan = {settings.messages_topics[0]: DEFAULT_PARTITIONS["messages"]}
    plan |= dict.fromkeys(settings.messages_topics[1:], DEFAULT_PARTITIONS["messages_backfill"])
    plan[settings.walkins_topics[0]] = DEFAULT_PARTITIONS["walkins"]
    plan |= dict.fromkeys(settings.walkins_topics[1:], DEFAULT_PARTITIONS["walkins_backfill"])
    plan[settings.output_topic] = DEFAULT_PARTITIONS["output"]
    plan[settings.dlq_topic] = DEFAULT_PARTITIONS["dlq"]
    plan[settings.erasures_topic] = DEFAULT_PARTITIONS["erasures"]
    return plan


def _topic_configs(settings: Settings, retention_ms: int | None) -> dict[str, dict[str, str]]:
    """Topic configs on creation: input retention; compaction for the output and erasures."""
    inputs = {*settings.messages_topics, *settings.walkins_topics}
    configs = {t: {"retention.ms": str(retention_ms)} for t in inputs} if retention_ms else {}
    configs[settings.output_topic] = {"cleanup.policy": "compact"}  # latest per walkin_id
    # Latest request per customer, kept as long as the topic: a replay erases again.
    configs[settings.erasures_topic] = {"cleanup.policy": "compact"}
    return configs


@main.group()
def topics() -> None:
    """Create or verify the service's topics."""


@topics.command("create")
@click.option(
    "--partitions",
    "-p",
    multiple=True,
    metavar="TOPIC=N",
    help="Partition count of a topic (repeatable); others get the defaults.",
)
@click.option(
    "--retention",
    default="7d",
    show_default=True,
    help="retention.ms of the input topics, as a duration (e.g. 14d).",
)
@reports_errors
def topics_create(partitions: tuple[str, ...], retention: str) -> None:
    """Create the missing input, output, DLQ and erasures topics (existing ones stay)."""
    settings = settings_from_env()
    keep = parse_duration("--retention", retention)
    plan = _topic_plan(settings)
    for item in partitions:
        name, _, count = item.partition("=")
        if name not in plan or not count.isdigit():
            msg = f"--partitions {item!r}: expected TOPIC=N for one of {', '.join(plan)}"
            raise click.BadParameter(msg)
        plan[name] = int(count)
    configs = _topic_configs(settings, int(keep.total_seconds() * 1000))
    created = ensure_topics(settings.kafka_config(), plan, configs=configs)
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@topics.command("verify")
@reports_errors
def topics_verify() -> None:
    """Show every topic of the service with its partitions; fail if one is missing."""
    settings = settings_from_env()
    names = [
        *settings.messages_topics,
        *settings.walkins_topics,
        settings.output_topic,
        settings.dlq_topic,
        settings.erasures_topic,
    ]
    found = describe_topics(settings.kafka_config(), names)
    table = Table("topic", "role", "partitions", "retention.ms", "cleanup.policy")
    roles = {
        **dict.fromkeys(settings.messages_topics, "messages"),
        **dict.fromkeys(settings.walkins_topics, "walk-ins"),
        settings.output_topic: "output",
        settings.dlq_topic: "dead letters",
        settings.erasures_topic: "erasure requests",
    }
    missing = []
    for name in names:
        info = found.get(name)
        if info is None:
            missing.append(name)
            table.add_row(name, roles[name], "[red]missing[/red]", "", "")
        else:
            table.add_row(
                name, roles[name], str(info.partitions), info.retention_ms, info.cleanup_policy
            )
    console.print(table)
    console.print(
        "Partition counts may differ between topics: the service re-keys every event "
        "by (business, customer), so co-partitioning is NOT required."
    )
    if missing:
        msg = f"missing topic(s): {', '.join(missing)}"
        raise click.ClickException(msg)


# --- generate -----------------------------------------------------------------------------


@main.command()
@click.option("--customers", default=2000, show_default=True, help="Customers to simulate.")
@click.option("--businesses", default=25, show_default=True, help="Businesses they belong to.")
@click.option("--days", default=3, show_default=True, help="Days of message history.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same ids).")
@click.option("--create-topics", is_flag=True, help="Create missing topics first.")
@click.option(
    "--format",
    "wire_format",
    type=click.Choice(OUTPUT_FORMATS),
    default="protobuf",
    show_default=True,
    help="Bare protobuf, or framed as a Schema Registry serializer frames it.",
)
@click.option(
    "--schema-id",
    type=click.IntRange(1, 2**31 - 1),
    default=1,
    show_default=True,
    help="The schema id in the frames (--format confluent).",
)
@reports_errors
def generate(
    customers: int,
    businesses: int,
    days: int,
    seed: int,
    create_topics: bool,
    wire_format: str,
    schema_id: int,
) -> None:
    """Produce realistic sample traffic to the live input topics."""
    settings = settings_from_env()
    kafka = settings.kafka_config()
    if create_topics:
        created = ensure_topics(
            kafka, _topic_plan(settings), configs=_topic_configs(settings, None)
        )
        console.print(f"created topics: {', '.join(created) or 'none (all existed)'}")
    start = time.time_ns() - days * traffic.DAY
    sample = traffic.generate(
        seed=seed, businesses=businesses, customers=customers, start_ns=start, days=days
    )
    messages, walkins = sample.messages, sample.walkins
    if wire_format == "confluent":
        messages = traffic.framed(messages, schema_id, MESSAGE_INDEXES)
        walkins = traffic.framed(walkins, schema_id, WALKIN_INDEXES)
    produce(kafka, settings.messages_topics[0], messages)
    produce(kafka, settings.walkins_topics[0], walkins)
    framing = f", framed with schema id {schema_id}" if wire_format == "confluent" else ""
    console.print(
        f"produced {len(messages)} message records to "
        f"{settings.messages_topics[0]} and {len(walkins)} walk-in records to "
        f"{settings.walkins_topics[0]} ({sample.bad} bad, the rest valid or duplicates{framing})"
    )


# --- erase ----------------------------------------------------------------------------------


@main.command()
@click.option("--business", "business_id", required=True, help="business_id of the customer.")
@click.option("--customer", "customer_id", required=True, help="customer_id to erase.")
@click.option("--reason", default="", help="Why (kept in the erasures topic only, never logged).")
@reports_errors
def erase(business_id: str, customer_id: str, reason: str) -> None:
    """Ask the service to forget one customer: state, MongoDB documents, output records.

    Appends a request to the compacted erasures topic and returns once the broker has it; the
    running service carries it out (docs/operations.md, "Erase a customer"). Safe to repeat.
    """
    settings = settings_from_env()
    for name, value in (("--business", business_id), ("--customer", customer_id)):
        if not value or len(value.encode()) > MAX_ID_BYTES:
            msg = f"{name} must be a non-empty id of at most {MAX_ID_BYTES} bytes"
            raise click.BadParameter(msg)
    record = encode_request(business_id, customer_id, datetime.now(UTC), reason)
    ((partition, offset),) = produce(settings.kafka_config(), settings.erasures_topic, [record])
    console.print(
        f"erasure requested: reference {erasure_reference(business_id, customer_id)} "
        f"({settings.erasures_topic}#{partition}@{offset}); audit lines erasure_state and "
        "erasure_outputs name it when it took effect"
    )


# --- backfill -----------------------------------------------------------------------------


@main.command()
@click.option("--since", "since", required=True, help="Start (ISO 8601; UTC if no zone).")
@click.option("--until", "until", default=None, help="End, exclusive (default: now).")
@reports_errors
def backfill(since: str, until: str | None) -> None:
    """Copy records produced in a time range from the live topics to the backfill topics.

    Records keep their key, value and headers. The range is by Kafka record time (when the
    records were produced), found with offsets-for-times, so nothing is decoded.
    """
    settings = settings_from_env()
    start = instant(since)
    end = instant(until) if until else datetime.now(UTC)
    if len(settings.messages_topics) < 2 or len(settings.walkins_topics) < 2:
        msg = "backfill needs a backfill topic after the live one in each *_TOPICS setting"
        raise click.ClickException(msg)
    pairs = [
        (settings.messages_topics[0], settings.messages_topics[1]),
        (settings.walkins_topics[0], settings.walkins_topics[1]),
    ]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        for source, target in pairs:
            task = progress.add_task(f"{source} -> {target}", total=None)
            copied = copy_time_range(
                settings.kafka_config(),
                source,
                target,
                start,
                end,
                on_progress=_progress_of(progress, task),
            )
            progress.update(task, completed=copied, total=copied)
    console.print(f"backfilled records produced in [{start.isoformat()}, {end.isoformat()})")


def _progress_of(progress: Progress, task: TaskID) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update


# --- report and summary -------------------------------------------------------------------


def _mongo(settings: Settings) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=5000)


def _writable_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A file we can write: its folder exists and takes files (checked before any work)."""
    if value is None:
        return None
    if importlib.util.find_spec("matplotlib") is None:
        msg = "needs matplotlib: pip install 'walkthroughs[plot]'"
        raise click.BadParameter(msg, ctx, param)
    folder = value.parent
    if not folder.is_dir():
        msg = f"folder {str(folder)!r} does not exist"
        raise click.BadParameter(msg, ctx, param)
    if not os.access(folder, os.W_OK):
        msg = f"folder {str(folder)!r} is not writable"
        raise click.BadParameter(msg, ctx, param)
    return value


@main.command()
@click.option(
    "--days",
    type=click.IntRange(min=1, max=3660),
    default=14,
    show_default=True,
    help="How many local dates: today's (UTC) and the days before it.",
)
@click.option("--business", "businesses", multiple=True, help="Only these businesses.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_writable_file,
    default=None,
    help="Also write a PNG chart of the daily counts here.",
)
@reports_errors
def report(days: int, businesses: tuple[str, ...], plot: Path | None) -> None:
    """Daily walkthrough counts per business, from MongoDB.

    A zone ahead of UTC may already count tomorrow's local date: it is shown too.
    """
    settings = settings_from_env()
    first = (datetime.now(UTC).date() - timedelta(days=days - 1)).isoformat()
    query: dict[str, Any] = {"date": {"$gte": first}}
    if businesses:
        query["business_id"] = {"$in": list(businesses)}
    client = _mongo(settings)
    try:
        counts = client[settings.mongo_db][COUNTS]
        rows = list(counts.find(query, {"_id": 0}))
        if not rows:
            raise click.ClickException(_why_empty(counts, first, businesses))
    finally:
        client.close()
    rows.sort(key=lambda r: (r["business_id"], r["date"]))
    channels = sorted({c for r in rows for c in r.get("by_channel", {})})
    table = Table(title="Daily walkthroughs")
    table.add_column("business", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("total", justify="right")
    for channel in channels:
        table.add_column(_SHORT_CHANNEL.get(channel, channel), justify="right")
    for r in rows:
        by = r.get("by_channel", {})
        table.add_row(
            r["business_id"], r["date"], str(r["count"]), *(str(by.get(c, "")) for c in channels)
        )
    console.print(table)
    if plot is not None:
        _plot(rows, plot)
        console.print(f"chart written to {plot}")


def _why_empty(
    counts: pymongo.collection.Collection[dict[str, Any]], first: str, businesses: tuple[str, ...]
) -> str:
    """What an empty report means: nothing at all, no such business, or nothing that recent."""
    if counts.find_one({}, {"_id": 1}) is None:
        return (
            f"no daily counts in {counts.full_name}: has the dataflow run with MongoDB on "
            "(WALKTHROUGHS_MONGO_URI, WALKTHROUGHS_MONGO_DB)?"
        )
    which = {"business_id": {"$in": list(businesses)}} if businesses else {}
    latest = counts.find_one(which, {"date": 1}, sort=[("date", pymongo.DESCENDING)])
    if latest is None:
        return f"no walkthroughs ever counted for business {', '.join(businesses)}"
    return f"no walkthroughs counted since {first}: the latest local date is {latest['date']}"


_SHORT_CHANNEL = {
    "CHANNEL_UNSPECIFIED": "unspecified",
    "EMAIL": "email",
    "SMS": "sms",
    "FACEBOOK_AD": "fb ad",
    "PUSH": "push",
}


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    # Imported here: matplotlib is the optional `plot` extra, absent from the service image.
    try:
        import matplotlib as mpl  # noqa: PLC0415
    except ImportError as exc:
        msg = "--plot needs matplotlib: pip install 'walkthroughs[plot]'"
        raise click.ClickException(msg) from exc

    mpl.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt  # noqa: PLC0415

    per_business: dict[str, dict[str, int]] = {}
    for r in rows:
        per_business.setdefault(r["business_id"], {})[r["date"]] = int(r["count"])
    dates = sorted({r["date"] for r in rows})
    top = sorted(per_business, key=lambda b: -sum(per_business[b].values()))[:10]
    fig, ax = plt.subplots(figsize=(10, 5))
    for business in top:
        ax.plot(
            dates, [per_business[business].get(d, 0) for d in dates], marker="o", label=business
        )
    ax.set_xlabel("local date")
    ax.set_ylabel("walkthroughs")
    ax.set_title("Daily walkthroughs, top businesses")
    if top:
        ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


@main.command()
@reports_errors
def summary() -> None:
    """Totals from MongoDB and the dead letters by reason (what `make run` prints)."""
    settings = settings_from_env()
    client = _mongo(settings)
    try:
        db = client[settings.mongo_db]
        total = db[WALKTHROUGHS].count_documents({})
        per_business: Counter[str] = Counter()
        days: set[str] = set()
        for doc in db[COUNTS].find({}, {"business_id": 1, "date": 1, "count": 1}):
            per_business[str(doc["business_id"])] += int(doc["count"])
            days.add(str(doc["date"]))
    finally:
        client.close()
    console.print(
        f"walkthroughs in MongoDB: {total} over {len(per_business)} businesses and "
        f"{len(days)} local dates (counts sum to {sum(per_business.values())})",
        soft_wrap=True,  # one line, whatever the terminal's width
    )
    table = Table("business", "walkthroughs", title="Top businesses")
    for business, n in per_business.most_common(5):
        table.add_row(business, str(n))
    console.print(table)
    # One pass, counted by the fixed set of reasons: a huge DLQ, or hostile error headers,
    # make neither a long table nor a large process.
    reasons: Counter[str] = Counter()
    dlq = slice_topic(settings.kafka_config(), settings.dlq_topic)
    for record in iter_slice(settings.kafka_config(), dlq):
        reasons[reason_of(record.headers.get("error", b"").decode(errors="replace"))] += 1
    console.print(f"dead letters in {settings.dlq_topic}: {reasons.total()}", soft_wrap=True)
    table = Table("reason", "records", title="Dead letters by reason")
    for reason, n in reasons.most_common():
        table.add_row(reason, str(n))
    console.print(table)


# --- doctor -------------------------------------------------------------------------------


Check = tuple[str, bool, str]


@main.command()
@click.option(
    "--recovery-dir",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("BYTEWAX_RECOVERY_DIRECTORY"),
    help="Recovery store to check [env: BYTEWAX_RECOVERY_DIRECTORY].",
)
def doctor(recovery_dir: Path | None) -> None:
    """Check settings, Kafka, topics, MongoDB and the recovery store; exit 1 if any fails.

    The checks are the service's own start-up checks (``walkthroughs.runtime.startup``), reported in
    words: a failing check prints what the service would say, never a traceback.
    """
    try:
        settings = settings_from_env()
    except WalkthroughsError as exc:
        _print_check(("settings", False, str(exc)))
        raise SystemExit(1) from exc
    checks: list[Check] = [("settings", True, "all WALKTHROUGHS_* settings are valid")]
    checks += _kafka_checks(settings)
    if settings.mongo_enabled:
        checks.append(_checked("mongodb", lambda: _mongo_check(settings)))
    else:
        checks.append(("mongodb", True, "off (WALKTHROUGHS_MONGO_ENABLED=0)"))
    checks.append(_schema_check(settings))
    checks.append(_check_recovery(recovery_dir))
    for check in checks:
        _print_check(check)
    if not all(ok for _, ok, _ in checks):
        raise SystemExit(1)


def _print_check(check: Check) -> None:
    """One line per check, never wrapped: what fails reads whole, and greps."""
    name, ok, detail = check
    mark = click.style("ok  ", fg="green") if ok else click.style("FAIL", fg="red")
    click.echo(f"{mark}  {name:<14}  {detail}")


def _checked(name: str, check: Callable[[], str]) -> Check:
    """Run one check; any failure, expected or not, becomes its line in the table."""
    try:
        return name, True, check()
    except WalkthroughsError as exc:
        return name, False, str(exc)
    except Exception as exc:  # noqa: BLE001  # doctor reports in words, never a traceback
        return name, False, scrub(f"{type(exc).__name__}: {exc}")


def _schema_check(settings: Settings) -> Check:
    """The output's frame: bare, a given schema id, or the id the registry holds (registered)."""
    if settings.output_format != "confluent":
        return "output schema", True, "bare protobuf (WALKTHROUGHS_OUTPUT_FORMAT=protobuf)"
    if settings.output_schema_id:
        return "output schema", True, f"framed with schema id {settings.output_schema_id} (given)"

    def registered() -> str:
        found = output_schema_id(settings)
        where = redact_uri(settings.schema_registry_url)
        return f"framed with schema id {found}, registered at {where}"

    return _checked("output schema", registered)


def _kafka_checks(settings: Settings) -> list[Check]:
    kafka = settings.kafka_config()
    clients = _checked("kafka settings", lambda: _kafka_clients_check(kafka))
    if not clients[1]:
        return [clients]
    roles = topic_roles(settings)
    timeout_s = settings.startup_timeout.total_seconds()
    found: dict[str, object] = {}

    def reach() -> str:
        found.update(describe_topics(kafka, list(roles), timeout_s=timeout_s))
        return f"reachable at {settings.kafka_bootstrap}"

    reachable = _checked("kafka", reach)
    if not reachable[1]:
        return [clients, reachable]
    missing = [f"{roles[t]} {t!r}" for t in roles if t not in found]
    if missing:
        return [clients, reachable, ("topics", False, f"missing: {', '.join(missing)}")]
    limits = _checked("topics", lambda: _limits_check(settings))
    return [clients, reachable, limits]


def _kafka_clients_check(kafka: dict[str, str]) -> str:
    check_kafka_clients(kafka)
    return "accepted by the Kafka client"


def _limits_check(settings: Settings) -> str:
    facts = check_kafka(settings)
    limits = ", ".join(f"{t} {n} B" for t, n in facts.record_limits.items())
    return f"{len(facts.partitions)} present; largest records: {limits}"


def _mongo_check(settings: Settings) -> str:
    check_mongo(settings, ensure=False)
    return f"answers, credentials accepted; database {settings.mongo_db!r}"


def _check_recovery(folder: Path | None) -> tuple[str, bool, str]:
    if folder is None:
        return "recovery", True, "not configured (a restart re-reads the topics from the start)"
    parts = sorted(folder.glob("part-*.sqlite3")) if folder.is_dir() else []
    if not parts:
        return "recovery", False, f"{folder}: no partitions (python -m bytewax.recovery DIR N)"
    if not os.access(folder, os.W_OK):
        return "recovery", False, f"{folder}: not writable"
    return "recovery", True, f"{folder}: {len(parts)} partitions, writable"


main.add_command(dlq)
