"""The service's exception tree.

Bad data is never an exception that escapes a step: ``DecodeError`` is turned into a dead letter
where it is raised. ``ConfigError`` stops the process at start-up. Anything else is a bug or an
outage and is allowed to crash the worker, so that the supervisor restarts it from recovery.
"""

from __future__ import annotations

from walkthroughs.wire.schema import Reason


class WalkthroughsError(Exception):
    """Root of every error the service raises on purpose."""


class ConfigError(WalkthroughsError):
    """A setting is missing or malformed; the message names the variable and the accepted form."""


class StartupError(WalkthroughsError):
    """The outside world is not as the settings say; the message names the setting to check.

    A server unreachable within the start-up timeout, a topic missing, bad credentials.
    """


class DecodeError(WalkthroughsError):
    """An input record is bad: it goes to the dead-letter topic and is never retried.

    Attributes:
        reason: the closed category, used as a metric label.
        detail: what exactly is wrong, for the people reading the DLQ.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value} {detail}".rstrip() if detail else reason.value)


class SinkUnavailableError(WalkthroughsError):
    """An output stayed unreachable after bounded retries; the worker stops rather than drop."""
