"""Dead letters read back: reasons, the redrive plan, its loop guard, the headers it carries."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from walkthroughs.tools.dead_letters import (
    OTHER,
    Letter,
    ReasonRow,
    RedrivePlanner,
    Summary,
    Verdict,
    known_reasons,
    reason_of,
    redrive_headers,
    sample,
    shown,
)
from walkthroughs.wire.codec import encode_walkin
from walkthroughs.wire.dead_letter_headers import carried_headers
from walkthroughs.wire.framing import frame
from walkthroughs.wire.schema import Reason, WalkInEvent

SEND, STOPPED, TRUNCATED, STRAY = Verdict.SEND, Verdict.STOPPED, Verdict.TRUNCATED, Verdict.STRAY
KINDS = {"walkins": "walkins", "zr-messages": "messages", "erasures": "erasures"}


def letter(
    offset: int,
    error: str = "invalid timezone: 'PST' is not a tzdata zone",
    *,
    source: tuple[str, int, int] = ("walkins", 0, 7),
    redriven: int = 0,
    origin: str | None = None,
    value: bytes | None = b"",
    extra: dict[str, bytes] | None = None,
) -> Letter:
    headers = {
        "error": error.encode(),
        "source_topic": source[0].encode(),
        "source_partition": str(source[1]).encode(),
        "source_offset": str(source[2]).encode(),
        **({"redrive_count": str(redriven).encode()} if redriven else {}),
        **({"redrive_origin": origin.encode()} if origin else {}),
        **(extra or {}),
    }
    return Letter(0, offset, 1_700_000_000_000 + offset, b"k", value, headers)


def summarize(letters: Iterable[Letter]) -> list[ReasonRow]:
    """What ``dlq inspect`` tallies, over letters held in memory."""
    summary = Summary()
    for g in letters:
        summary.add(g)
    return summary.rows()


def plan_redrive(
    letters: Sequence[Letter],
    reason: str,
    max_redrives: int,
    inputs: Collection[str] | None = None,
) -> dict[Verdict, list[Letter]]:
    """Both passes of ``dlq redrive`` over letters held in memory: the letters of each
    verdict, in DLQ order."""
    planner = RedrivePlanner()
    for g in letters:
        planner.add(g)
    chosen: dict[Verdict, list[Letter]] = {v: [] for v in Verdict}
    for verdict, g in planner.plan(reason, max_redrives, inputs).judge(letters):
        chosen[verdict].append(g)
    for group in chosen.values():
        group.sort(key=lambda g: (g.partition, g.offset))
    return chosen


def test_reason_is_the_longest_known_prefix_and_other_when_none() -> None:
    assert reason_of("invalid timezone: 'PST'") == "invalid timezone"
    assert reason_of("missing field") == Reason.MISSING_FIELD.value
    assert reason_of("missing field: customer_id") == Reason.MISSING_FIELD.value
    assert reason_of("missing fieldx") == OTHER  # a prefix of a word is not the reason
    assert reason_of("") == OTHER
    assert reason_of("\x00garbage") == OTHER
    assert set(known_reasons()) == {*(r.value for r in Reason), OTHER}
    for reason in Reason:  # every reason the service writes reads back as itself
        assert reason_of(f"{reason.value}: detail") == reason.value


def test_lineage_is_the_first_position_for_every_redriven_copy() -> None:
    first = letter(1)
    assert first.lineage == "walkins#0@7"
    assert first.redrive_count == 0
    again = letter(2, source=("walkins", 3, 90), redriven=1, origin="walkins#0@7")
    assert again.lineage == first.lineage
    assert again.source == ("walkins", 3, 90)
    hostile = letter(3, extra={"source_partition": b"x", "source_offset": b"\xff"})
    assert hostile.source == ("walkins", 0, 0)  # unreadable numbers do not raise


def test_plan_sends_the_latest_attempt_of_each_lineage_once() -> None:
    letters = [
        letter(1),  # dead-lettered...
        letter(2),  # ...and again by a replay of the epoch: the same lineage
        letter(3, source=("walkins", 1, 8)),
        letter(4, source=("walkins", 2, 40), redriven=1, origin="walkins#0@7"),
        letter(5, "missing field: customer_id", source=("walkins", 0, 9)),
    ]
    plan = plan_redrive(letters, "invalid timezone", max_redrives=3)
    assert [g.offset for g in plan[SEND]] == [3, 4]  # 4 supersedes 1 and 2
    assert plan[STOPPED] == plan[TRUNCATED] == plan[STRAY] == []
    assert [g.offset for g in plan_redrive(letters, "missing field", 3)[SEND]] == [5]
    assert plan_redrive(letters, "undecodable", 3)[SEND] == []


def test_a_lineage_whose_latest_attempt_failed_otherwise_is_not_sent_for_the_old_reason() -> None:
    letters = [
        letter(1),
        letter(2, "missing field: x", source=("walkins", 0, 50), redriven=1, origin="walkins#0@7"),
    ]
    assert plan_redrive(letters, "invalid timezone", 3)[SEND] == []
    assert [g.offset for g in plan_redrive(letters, "missing field", 3)[SEND]] == [2]


def test_loop_guard_holds_back_a_record_redriven_max_times() -> None:
    letters = [letter(1, source=("walkins", 0, 100), redriven=2, origin="walkins#0@7")]
    assert plan_redrive(letters, "invalid timezone", max_redrives=3)[SEND] == letters
    held = plan_redrive(letters, "invalid timezone", max_redrives=2)
    assert (held[SEND], held[STOPPED]) == ([], letters)
    assert redrive_headers(letters[0], datetime(2026, 12, 3, tzinfo=UTC)) == [
        ("redrive_count", b"3"),
        ("redrive_origin", b"walkins#0@7"),
        ("redriven_at", b"2026-12-03T00:00:00+00:00"),
    ]


def test_a_truncated_letter_is_never_sent_as_if_whole() -> None:
    cut = letter(1, "undecodable: 2000000 bytes", extra={"value_truncated": b"2000000"})
    plan = plan_redrive([cut], "undecodable", 3)
    assert (plan[SEND], plan[TRUNCATED]) == ([], [cut])


def test_a_letter_from_a_topic_the_service_no_longer_reads_is_held_back() -> None:
    letters = [letter(1), letter(2, source=("old-walkins", 0, 3))]
    plan = plan_redrive(letters, "invalid timezone", 3, inputs={"walkins"})
    assert ([g.offset for g in plan[SEND]], [g.offset for g in plan[STRAY]]) == ([1], [2])
    assert [g.offset for g in plan_redrive(letters, "invalid timezone", 3)[SEND]] == [1, 2]


def test_the_plan_keeps_no_bytes_and_the_second_pass_finds_what_it_chose() -> None:
    letters = [letter(i, source=("walkins", i % 2, 100 + i)) for i in range(1, 7)]
    letters.append(letter(7, source=("walkins", 1, 101), redriven=3, origin="walkins#1@101"))
    planner = RedrivePlanner()
    for g in letters:
        planner.add(g)
    plan = planner.plan("invalid timezone", max_redrives=3)
    assert all(  # positions in the DLQ, not letters
        isinstance(p, tuple) and isinstance(v[0], Verdict) for p, v in plan.verdicts.items()
    )
    assert (plan.count(SEND), plan.count(STOPPED)) == (5, 1)
    assert plan.sends_per_topic == {"walkins": 5}
    # the second pass is a fresh read; a record retention deleted in between is simply missing
    judged = list(plan.judge(g for g in letters if g.offset != 2))
    assert [(v, g.offset) for v, g in judged] == [
        (SEND, 3),
        (SEND, 4),
        (SEND, 5),
        (SEND, 6),
        (STOPPED, 7),
    ]


def test_a_position_that_holds_another_record_on_the_second_pass_is_not_sent() -> None:
    planned = [letter(1, source=("walkins", 0, 100)), letter(2, source=("walkins", 0, 101))]
    planner = RedrivePlanner()
    for g in planned:
        planner.add(g)
    plan = planner.plan("invalid timezone", max_redrives=3)
    # the DLQ was deleted and made anew between the passes: offset 2 is another record now
    reread = [planned[0], letter(2, source=("walkins", 0, 999))]
    assert [g.offset for _, g in plan.judge(reread)] == [1]


def test_text_from_headers_is_shown_without_terminal_control_sequences() -> None:
    hostile = "invalid timezone\x1b]0;owned\x07\x1b[2J\u202e"
    assert shown(hostile) == "invalid timezone\\u001b]0;owned\\u0007\\u001b[2J\\u202e"
    assert shown("walkins#0@7 é") == "walkins#0@7 é"
    assert "\x1b" not in sample(letter(1, source=("erasures", 0, 1), value=hostile.encode()), KINDS)


def test_only_the_redrive_headers_are_carried_and_they_are_cut() -> None:
    headers: list[tuple[str, bytes | None]] = [
        ("traceparent", b"00-ab"),
        ("redrive_count", b"2"),
        ("redrive_origin", b"x" * 10_000),
        ("error", b"forged"),
        ("redrive_count", None),
    ]
    assert carried_headers(headers) == [
        ("redrive_count", b"2"),
        ("redrive_origin", b"x" * 256),
        ("redrive_count", b""),
    ]
    assert carried_headers(None) == []


def test_summary_groups_by_reason_most_frequent_first() -> None:
    rows = summarize([letter(1), letter(2, redriven=1), letter(3, "missing field: x")])
    assert [(r.reason, r.count, r.first_offset, r.last_offset, r.redriven) for r in rows] == [
        ("invalid timezone", 2, 1, 2, 1),
        ("missing field", 1, 3, 3, 0),
    ]
    assert rows[0].first_at < rows[0].last_at
    assert rows[0].samples == ()


def test_summary_keeps_the_first_samples_per_reason_and_bounded_rows() -> None:
    summary = Summary(samples_per_reason=2)
    for i in range(10_000):  # hostile error headers: one row for all that name no reason
        summary.add(letter(i, f"forged {i}" if i % 2 else "missing field: x"))
    rows = summary.rows()
    assert [(r.reason, r.count) for r in rows] == [("missing field", 5000), (OTHER, 5000)]
    assert [[g.offset for g in r.samples] for r in rows] == [[0, 2], [1, 3]]


def test_sample_shows_what_a_bad_record_holds_without_validating_it() -> None:
    walkin = WalkInEvent("w1", "b", "c", "", 1_700_000_000_000_000_000, "")
    shown = sample(letter(1, value=encode_walkin(walkin, timezone="PST")), KINDS)
    assert 'walkin_id: "w1"' in shown
    assert 'timezone: "PST"' in shown
    assert "\n" not in shown
    assert "do not parse as WalkIn" in sample(letter(2, value=b"\xff\xff\xff"), KINDS)
    assert sample(letter(3, value=None), KINDS) == "(no value)"
    erasure = letter(4, source=("erasures", 0, 1), value=b'{"business_id": "' + b"b" * 999)
    assert sample(erasure, KINDS).endswith("...")
    assert len(sample(erasure, KINDS)) == 300
    assert "does not read" in sample(letter(5, source=("elsewhere", 0, 1), value=b"x"), KINDS)
    cut = letter(6, value=encode_walkin(walkin), extra={"value_truncated": b"1"})
    assert sample(cut, KINDS).startswith("(a prefix) ")


def test_sample_shows_a_framed_record_unframed_and_a_broken_frame_by_its_fault() -> None:
    walkin = WalkInEvent("w1", "b", "c", "", 1_700_000_000_000_000_000, "")
    framed = frame(encode_walkin(walkin, timezone="PST"), 1234, (1,))
    shown = sample(letter(1, value=framed), KINDS)
    assert shown.startswith("(framed, schema id 1234) ")
    assert 'walkin_id: "w1"' in shown
    assert sample(letter(2, value=b"\x00\x00\x01"), KINDS) == (
        "3 bytes, schema registry frame: schema id cut short (2 of 4 bytes)"
    )
    assert "(framed, schema id 7) 3 bytes that do not parse as WalkIn" in sample(
        letter(3, value=frame(b"\xff\xff\xff", 7)), KINDS
    )
