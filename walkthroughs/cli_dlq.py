"""``python -m walkthroughs dlq``: look at dead letters, and send fixed ones back.

``inspect`` reads the DLQ topic (or the part produced in ``[--since, --until)``) and prints a
table per reason with decoded samples. ``redrive`` re-produces the dead letters of one reason to
their source topics, the original key and bytes, with the headers of ``dead_letters`` (how many
times, from where), after the fix (a setting changed, a producer repaired) is deployed. The
rules of what is sent, and the loop guard, are in ``dead_letters``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from walkthroughs.cli_support import console, instant, reports_errors, settings_from_env
from walkthroughs.config import Settings
from walkthroughs.dead_letters import (
    Letter,
    known_reasons,
    plan_redrive,
    redrive_headers,
    sample,
    summarize,
)
from walkthroughs.sinks.kafka import Headers
from walkthroughs.topics import produce_to, read_topic

DEFAULT_MAX_REDRIVES = 3
F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def dlq() -> None:
    """Inspect dead letters, and redrive them once fixed."""


def _reason_option(*, required: bool) -> Callable[[F], F]:
    return click.option(
        "--reason",
        required=required,
        type=click.Choice(known_reasons()),
        help="Only dead letters of this reason (the first words of their error header).",
    )


_since = click.option("--since", default=None, help="Dead-lettered at or after (ISO 8601).")
_until = click.option("--until", default=None, help="Dead-lettered before (ISO 8601).")


@dlq.command("inspect")
@_reason_option(required=False)
@_since
@_until
@click.option("--limit", default=3, show_default=True, help="Samples shown per reason.")
@reports_errors
def inspect(reason: str | None, since: str | None, until: str | None, limit: int) -> None:
    """A table of reasons with counts and offsets, and decoded samples of each."""
    settings = settings_from_env()
    letters = _read(settings, since, until)
    if reason is not None:
        letters = [g for g in letters if g.reason == reason]
    table = Table(title=f"Dead letters in {settings.dlq_topic}")
    for column in ("reason", "records", "offsets", "first", "last", "redriven"):
        table.add_column(column, justify="right" if column in {"records", "redriven"} else "left")
    rows = summarize(letters)
    for row in rows:
        table.add_row(
            row.reason,
            str(row.count),
            f"{row.first_offset}-{row.last_offset}",
            f"{row.first_at:%Y-%m-%d %H:%M:%S}",
            f"{row.last_at:%Y-%m-%d %H:%M:%S}",
            str(row.redriven),
        )
    console.print(table)
    kinds = _topic_kinds(settings)
    for row in rows:
        shown = [g for g in letters if g.reason == row.reason][:limit]
        console.print(f"[bold]{row.reason}[/bold]: {len(shown)} of {row.count}")
        for g in shown:
            topic, partition, offset = g.source
            console.print(f"  {topic}#{partition}@{offset}  {g.error}", markup=False)
            console.print(f"    {sample(g, kinds)}", markup=False)


@dlq.command("redrive")
@_reason_option(required=True)
@_since
@_until
@click.option(
    "--max-redrives",
    default=DEFAULT_MAX_REDRIVES,
    show_default=True,
    type=click.IntRange(1),
    help="Loop guard: a record redriven this many times that failed again is not sent again.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing.")
@reports_errors
def redrive(
    reason: str, since: str | None, until: str | None, max_redrives: int, dry_run: bool
) -> None:
    """Re-produce dead letters of a reason to their source topics, once the cause is fixed.

    Each record keeps its key and bytes and gets redrive_count and redrive_origin headers.
    Safe to repeat: a record that now passes is a duplicate the second time, and ignored.
    """
    settings = settings_from_env()
    plan = plan_redrive(_read(settings, since, until), reason, max_redrives)
    for g in plan.stopped:
        console.print(
            f"loop guard: {g.lineage} was redriven {g.redrive_count} times and failed again "
            f"({g.error}); not sent",
            markup=False,
        )
    for g in plan.truncated:
        console.print(f"cannot redrive {g.lineage}: the DLQ holds only a prefix of its bytes")
    inputs = {*settings.messages_topics, *settings.walkins_topics, settings.erasures_topic}
    strays = [g for g in plan.send if g.source[0] not in inputs]
    for g in strays:
        console.print(f"cannot redrive {g.lineage}: {g.source[0]!r} is not an input topic now")
    send = [g for g in plan.send if g.source[0] in inputs]
    if dry_run:
        per_topic: dict[str, int] = {}
        for g in send:
            per_topic[g.source[0]] = per_topic.get(g.source[0], 0) + 1
        shown = ", ".join(f"{n} to {t}" for t, n in sorted(per_topic.items())) or "nothing"
        console.print(f"dry run: would redrive {len(send)} record(s) ({shown}); sent nothing")
        return
    now = datetime.now(UTC)
    records: list[tuple[str, bytes | None, bytes | None, Headers | None]] = [
        (g.source[0], g.key, g.value, list(redrive_headers(g, now))) for g in send
    ]
    columns = (TextColumn("redrive"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("redrive", total=len(records))
        produce_to(
            settings.kafka_config(),
            records,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    held = len(plan.stopped) + len(plan.truncated) + len(strays)
    console.print(
        f"redriven: {len(records)} record(s) of reason {reason!r}; held back: {held} "
        f"({len(plan.stopped)} at the loop guard of {max_redrives})"
    )


def _read(settings: Settings, since: str | None, until: str | None) -> list[Letter]:
    records = read_topic(
        settings.kafka_config(),
        settings.dlq_topic,
        since=instant(since) if since else None,
        until=instant(until) if until else None,
    )
    return [
        Letter(r.partition, r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in records
    ]


def _topic_kinds(settings: Settings) -> dict[str, str]:
    kinds = dict.fromkeys(settings.messages_topics, "messages")
    kinds |= dict.fromkeys(settings.walkins_topics, "walkins")
    kinds[settings.erasures_topic] = "erasures"
    return kinds
