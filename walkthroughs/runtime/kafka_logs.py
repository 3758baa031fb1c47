"""librdkafka's log, through the service's logger: one line per kind of message per interval.

Left alone, librdkafka writes every log event to stderr itself, from its own threads: with the
broker unreachable, each client of the process prints a ``Connect to ... failed`` line per
reconnect attempt, ~100 lines before start-up gives up at 5 s and ~585 at 30 s (measured), which
bury the one line that says what to fix.

Given a ``logger`` in its settings (``with_log_relay``), confluent-kafka queues the events and
hands each to the logger's ``log`` method from the thread that polls the client (``poll``,
``consume``, ``flush``). So a short-lived client that fails before it is polled logs nothing (its
error is raised, and says it in one line), and a client kept for long must be polled, or its
queue grows: the source's consumers poll all the time and the lag monitor polls its admin client
at each measure, but a producer polls only when it has records to write, and with the broker
down there are none. So the sinks' producers are also polled once a second by ``PUMP``, from a
thread of its own (a producer may be polled from any thread: delivery reports land in the
producer's failure list either way).

``KafkaLogRelay`` logs an event as ``kafka_client`` with its level, facility, client and text,
and collapses repeats: the first event of a kind is logged at once; the next ones within
``interval_s`` are counted, and the first after it is logged with how many were left out. The
kind is the level, the facility and the text with its changing numbers (``after 12ms``, ``3
identical error(s) suppressed``) blanked: the same failure from every client of the process is
one kind.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from confluent_kafka.admin import AdminClient

_log = logging.getLogger(__name__)
INTERVAL_S = 30.0
MAX_KINDS = 256  # kinds remembered; the oldest is forgotten first (it is logged again if seen)
_CHANGING = re.compile(r"\d+ms\b|, \d+ identical error\(s\) suppressed")


class KafkaLogRelay:
    """A ``logger`` for confluent-kafka clients that collapses repeated lines (module doc)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[tuple[int, str, str], tuple[float, int]] = {}  # -> (logged at, left out)

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Take one event; confluent-kafka passes ``("%s [%s] %s", facility, client, text)``."""
        if len(args) == 3:
            facility, client, text = (str(a) for a in args)
        else:
            facility, client, text = "", "", msg % args if args else msg
        kind = (level, facility, _CHANGING.sub("", text))
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self._interval_s:
                self._kinds[kind] = (seen[0], seen[1] + 1)
                return
            left_out = 0 if seen is None else seen[1]
            self._kinds.pop(kind, None)
            self._kinds[kind] = (now, 0)
            if len(self._kinds) > MAX_KINDS:
                del self._kinds[next(iter(self._kinds))]
        fields: dict[str, object] = {"facility": facility, "client": client, "text": text}
        if left_out:
            fields["repeats_left_out"] = left_out
        self._logger.log(level, "kafka_client", extra={"fields": fields})


RELAY = KafkaLogRelay(logging.getLogger("walkthroughs.kafka"))
"""The process's relay: every client's events share it, so one failure seen by every client of
the process is one line per interval."""


class _Discard:
    """A ``logger`` that drops every event: for clients built only to check their settings."""

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Drop the event."""


DISCARD = _Discard()


class _Polled(Protocol):
    def poll(self, timeout: float = ...) -> int: ...


class LogPump:
    """Polls registered clients every ``interval_s`` from a daemon thread: their log is served."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._owners: weakref.WeakKeyDictionary[object, _Polled] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, owner: object, client: _Polled) -> None:
        """Poll ``client`` for as long as ``owner`` lives (the pump keeps neither alive)."""
        with self._lock:
            self._owners[owner] = client
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kafka-logs", daemon=True)
                self._thread.start()

    def pump(self) -> None:
        """Poll every registered client once."""
        with self._lock:
            clients = list(self._owners.values())
        for client in clients:
            client.poll(0)

    def _run(self) -> None:
        while True:
            time.sleep(self._interval_s)
            try:
                self.pump()
            except Exception as exc:  # noqa: BLE001  # a callback's error: say it, keep pumping
                _log.warning("kafka_log_pump_failed", extra={"fields": {"error": repr(exc)}})


PUMP = LogPump()
"""The process's pump, for clients polled only when they have work (the sinks' producers)."""


def with_log_relay(config: Mapping[str, object]) -> dict[str, object]:
    """A client's settings, with its log sent through the process's relay (unless it has one)."""
    return {"logger": RELAY, **config}


def admin_client(config: Mapping[str, object]) -> AdminClient:
    """An admin client whose log goes through the relay (poll it, or drop it soon)."""
    # The client's stub types its settings without the logger: it is one of them all the same.
    settings = cast(dict[str, str | int | float | bool], with_log_relay(config))
    return AdminClient(settings)
