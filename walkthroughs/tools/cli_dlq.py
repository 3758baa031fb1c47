"""``python -m walkthroughs dlq``: look at dead letters, and send fixed ones back.

``inspect`` reads the DLQ topic (or the part produced in ``[--since, --until)``) and prints a
table per reason with decoded samples. ``redrive`` re-produces the dead letters of one reason to
their source topics, the original key and bytes, with the headers of ``dead_letters`` (how many
times, from where), after the fix (a setting changed, a producer repaired) is deployed. The
rules of what is sent, and the loop guard, are in ``dead_letters``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from walkthroughs.runtime.config import Settings
from walkthroughs.sinks.kafka import Headers
from walkthroughs.tools.cli_support import console, instant, reports_errors, settings_from_env
from walkthroughs.tools.dead_letters import (
    Letter,
    RedrivePlanner,
    Summary,
    Verdict,
    known_reasons,
    redrive_headers,
    sample,
    shown,
)
from walkthroughs.tools.topics import TopicSlice, iter_slice, produce_to, slice_topic

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
@click.option(
    "--limit", default=3, show_default=True, type=click.IntRange(0), help="Samples per reason."
)
@reports_errors
def inspect(reason: str | None, since: str | None, until: str | None, limit: int) -> None:
    """A table of reasons with counts and offsets, and decoded samples of each.

    One pass over the DLQ, holding the counts and the first ``--limit`` samples per reason.
    """
    settings = settings_from_env()
    summary = Summary(samples_per_reason=limit)
    for g in _letters(settings, _slice(settings, since, until)):
        if reason is None or g.reason == reason:
            summary.add(g)
    table = Table(title=f"Dead letters in {settings.dlq_topic}")
    for column in ("reason", "records", "offsets", "first", "last", "redriven"):
        table.add_column(column, justify="right" if column in {"records", "redriven"} else "left")
    rows = summary.rows()
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
        console.print(f"[bold]{row.reason}[/bold]: {len(row.samples)} of {row.count}")
        for g in row.samples:
            topic, partition, offset = g.source
            console.print(f"  {shown(topic)}#{partition}@{offset}  {shown(g.error)}", markup=False)
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
    Two passes over the same offsets: the first plans (a small tuple per lineage), the
    second streams the chosen records to the producer.
    """
    settings = settings_from_env()
    dlq_slice = _slice(settings, since, until)
    planner = RedrivePlanner()
    for g in _letters(settings, dlq_slice):
        planner.add(g)
    inputs = {*settings.messages_topics, *settings.walkins_topics, settings.erasures_topic}
    plan = planner.plan(reason, max_redrives, inputs)
    to_send = plan.count(Verdict.SEND)
    if dry_run and to_send == len(plan.verdicts):  # nothing held back to list: no second pass
        _say_dry_run(to_send, plan.sends_per_topic)
        return
    now = datetime.now(UTC)
    found: Counter[Verdict] = Counter()

    def chosen() -> Iterator[tuple[str, bytes | None, bytes | None, Headers | None]]:
        for verdict, g in plan.judge(_letters(settings, dlq_slice)):
            found[verdict] += 1
            if verdict is not Verdict.SEND:
                _report_held(verdict, g)
            elif not dry_run:
                yield (g.source[0], g.key, g.value, list(redrive_headers(g, now)))

    if dry_run:
        for _ in chosen():
            pass
        _say_dry_run(to_send, plan.sends_per_topic)
        return
    columns = (TextColumn("redrive"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("redrive", total=to_send)
        sent = produce_to(
            settings.kafka_config(),
            chosen(),
            on_progress=lambda done: progress.update(task, completed=done),
        )
    gone = len(plan.verdicts) - found.total()
    if gone:
        console.print(f"{gone} planned record(s) were deleted by retention between the passes")
    held = found.total() - found[Verdict.SEND]
    console.print(
        f"redriven: {sent} record(s) of reason {reason!r}; held back: {held} "
        f"({found[Verdict.STOPPED]} at the loop guard of {max_redrives})"
    )


def _say_dry_run(to_send: int, per_topic: Mapping[str, int]) -> None:
    targets = ", ".join(f"{n} to {t}" for t, n in sorted(per_topic.items())) or "nothing"
    console.print(f"dry run: would redrive {to_send} record(s) ({targets}); sent nothing")


def _report_held(verdict: Verdict, g: Letter) -> None:
    lineage = shown(g.lineage)
    why = {
        Verdict.STOPPED: f"loop guard: {lineage} was redriven {g.redrive_count} "
        f"time{'' if g.redrive_count == 1 else 's'} and failed again ({shown(g.error)}); not sent",
        Verdict.TRUNCATED: f"cannot redrive {lineage}: the DLQ holds only a prefix of its bytes",
        Verdict.STRAY: f"cannot redrive {lineage}: {shown(g.source[0])!r} is no input topic now",
    }[verdict]
    console.print(why, markup=False)


def _slice(settings: Settings, since: str | None, until: str | None) -> TopicSlice:
    return slice_topic(
        settings.kafka_config(),
        settings.dlq_topic,
        since=instant(since) if since else None,
        until=instant(until) if until else None,
    )


def _letters(settings: Settings, dlq_slice: TopicSlice) -> Iterator[Letter]:
    for r in iter_slice(settings.kafka_config(), dlq_slice):
        yield Letter(r.partition, r.offset, r.timestamp_ms, r.key, r.value, r.headers)


def _topic_kinds(settings: Settings) -> dict[str, str]:
    kinds = dict.fromkeys(settings.messages_topics, "messages")
    kinds |= dict.fromkeys(settings.walkins_topics, "walkins")
    kinds[settings.erasures_topic] = "erasures"
    return kinds
