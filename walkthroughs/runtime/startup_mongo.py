"""The start-up check of MongoDB: reachable, credentials accepted, indexes in place.

Apart from ``startup`` (Kafka) because it loads MongoDB's driver, ~60 ms of CPU at every
process start: a deployment with ``WALKTHROUGHS_MONGO_ENABLED=0`` never imports it.
"""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from walkthroughs.errors import StartupError
from walkthroughs.runtime.config import Settings
from walkthroughs.runtime.redaction import redact_uri, scrub
from walkthroughs.sinks.mongo import WALKTHROUGHS, Doc, ensure_indexes

_AUTHENTICATION_FAILED = 18
_UNAUTHORIZED = 13


def check_mongo(settings: Settings, *, ensure: bool = True) -> None:
    """Ping MongoDB, authenticate and ensure the indexes, within the start-up timeout.

    ``ensure=False`` (``doctor``) reads the index list instead: it changes nothing.

    Raises:
        StartupError: the URI is unusable, the server does not answer, the credentials are
            refused, or the user may not create the indexes; the message names
            ``WALKTHROUGHS_MONGO_URI`` and never holds its password.
    """
    timeout_ms = int(settings.startup_timeout.total_seconds() * 1000)
    where = f"WALKTHROUGHS_MONGO_URI={redact_uri(settings.mongo_uri)!r}"
    try:
        client: MongoClient[Doc] = MongoClient(
            settings.mongo_uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
            connect=False,
        )
    except (ConfigurationError, ValueError, TypeError, OSError) as exc:  # OSError: TLS files
        msg = f"{where} is not usable: {scrub(str(exc)).splitlines()[0]}"
        raise StartupError(msg) from exc
    try:
        client.admin.command("ping")  # authenticates when the URI carries credentials
        db = client[settings.mongo_db]
        if ensure:
            ensure_indexes(db)
        else:  # a read that needs the same authorization, and changes nothing
            db[WALKTHROUGHS].index_information()
    except PyMongoError as exc:
        raise StartupError(mongo_failure(settings, exc, startup=True)) from exc
    finally:
        client.close()


def mongo_failure(settings: Settings, exc: PyMongoError, *, startup: bool = False) -> str:
    """One line for a failed call to MongoDB, naming the setting to check (dataflow and CLI).

    ``startup``: the call had the start-up timeout (and the start-up checks' needs).
    """
    where = f"WALKTHROUGHS_MONGO_URI={redact_uri(settings.mongo_uri)!r}"
    if isinstance(exc, OperationFailure):
        if exc.code == _AUTHENTICATION_FAILED:
            return f"{where}: authentication failed (check the user, password and authSource)"
        if exc.code == _UNAUTHORIZED:
            return (
                f"{where}: the user is not authorized on database {settings.mongo_db!r} "
                "(it must read and write it, and create indexes)"
            )
        what = "the start-up checks" if startup else "the request"
        return f"{where}: MongoDB refused {what}: {_first_line(exc)}"
    shown = redact_uri(settings.mongo_uri)
    # The driver's text names the cause (refused, DNS, TLS) before its topology dump: keep that.
    cause = (
        (scrub(str(exc)).splitlines() or [""])[0]
        .split(" (configured timeouts")[0]
        .split(", Timeout:")[0]
    )
    why = f"{type(exc).__name__}: {cause[:200]}" if cause else type(exc).__name__
    if not startup:
        return f"cannot reach MongoDB at {shown} (WALKTHROUGHS_MONGO_URI): {why}"
    seconds = settings.startup_timeout.total_seconds()
    return (
        f"cannot reach MongoDB at {shown} within {seconds:.0f}s "
        f"(WALKTHROUGHS_MONGO_URI, WALKTHROUGHS_STARTUP_TIMEOUT): {why}"
    )


def _first_line(exc: PyMongoError) -> str:
    details = getattr(exc, "details", None)
    text = details.get("errmsg", str(exc)) if isinstance(details, dict) else str(exc)
    return scrub(str(text)).splitlines()[0]
