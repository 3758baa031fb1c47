"""The ids of stateful and I/O steps are part of the recovery format: they never move.

Bytewax keys every snapshot by its step's id (``walkthroughs.attribute``), and a step inside a
composite operator gets the composite's id in its own (``walkthroughs.sort.split_walkins``). So
the stages of ``build_flow`` hold only stateless steps; this pins where the others are.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource

from tests.flow.driver import MESSAGE_TOPICS, make_rules
from walkthroughs.dataflow.flow import Sinks, build_flow

STATEFUL = {"claim_walkin_ids", "carry_to_customers", "attribute"}
INPUTS_OUTPUTS = {"count_workers", "read_inputs", "write_dlq", "write_walkthroughs"}


def _steps(step: object) -> Iterator[tuple[str, str]]:
    """Every step below ``step``: its full id and its operator's name."""
    for sub in getattr(step, "substeps", ()):
        yield sub.step_id, type(sub).__name__
        yield from _steps(sub)


def _flow(*, mongo: bool) -> Dataflow:
    return build_flow(
        source=TestingSource([]),
        sinks=Sinks(
            walkthroughs=TestingSink([]),
            dead_letters=TestingSink([]),
            mongo=TestingSink([]) if mongo else None,
        ),
        message_topics=MESSAGE_TOPICS,
        rules=make_rules(),
        flush_interval_ns=1_000_000_000,
        now_getter=lambda: 0,
    )


@pytest.mark.parametrize("mongo", [True, False], ids=["mongo", "no-mongo"])
def test_stateful_and_io_steps_keep_their_top_level_ids(mongo: bool) -> None:
    steps = dict(_steps(_flow(mongo=mongo)))
    kept = {sid for sid, kind in steps.items() if kind in {"stateful_batch", "input", "output"}}
    expected = STATEFUL | INPUTS_OUTPUTS | ({"write_mongo"} if mongo else set())
    assert kept == {f"walkthroughs.{name}" for name in expected}
