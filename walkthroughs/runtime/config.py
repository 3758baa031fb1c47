"""Settings from the ``WALKTHROUGHS_*`` environment: the only place the environment is read.

Every variable of the contract has its default here. ``Settings.from_env`` validates everything
at start-up and raises ``ConfigError`` naming the variable and the accepted form, so a bad deploy
fails before it reads a single record. Unknown ``WALKTHROUGHS_*`` names are an error too: a typo
in a setting must not silently fall back to a default.

Extra Kafka client settings (SASL/TLS, timeouts...) pass through as
``WALKTHROUGHS_KAFKA_<PROPERTY>``: the property is the librdkafka name upper-cased, with
``.`` written ``_`` (and a literal ``_`` written ``__``):
``WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` sets ``security.protocol`` and
``WALKTHROUGHS_KAFKA_SASL_PASSWORD`` sets ``sasl.password``. They go to every Kafka client of the
service (consumers, producers, admin).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from walkthroughs.attribution import Rules
from walkthroughs.errors import ConfigError
from walkthroughs.runtime.kafka_properties import PROPERTIES
from walkthroughs.runtime.redaction import (
    HIDDEN,
    environment_secrets,
    is_secret_property,
    redact_uri,
)
from walkthroughs.wire.codec import TZDATA_ZONES

PREFIX = "WALKTHROUGHS_"
KAFKA_PREFIX = PREFIX + "KAFKA_"

_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_FORM = "a whole number with a unit (ms, s, m, h, d), e.g. 30s, 5m, 24h, 7d or 1h30m"
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_BOOTSTRAP_SERVER = re.compile(r"[^\s,]+:\d{1,5}")
_MONGO_DB_FORBIDDEN = set('/\\. "$*<>:|?\0')
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# Property names that the service sets itself; overriding them would break its guarantees.
_RESERVED_KAFKA_PROPERTIES = {"bootstrap.servers", "group.id", "enable.auto.commit"}
# confluent-kafka's own keys, Python objects the service sets (a string there breaks the client).
_CLIENT_OBJECTS = {"logger", "error_cb", "stats_cb", "throttle_cb", "oauth_cb", "on_delivery"}
_MAX_PORT = 65535
# Kafka client properties the service itself relies on, with the range it can honour: our sinks
# wait ``message.timeout.ms`` for acknowledgements, and librdkafka reads 0 as "forever".
_KAFKA_INT_RANGES = {"message.timeout.ms": (1, 3_600_000)}
_DAY = timedelta(days=1)
# (setting, attribute, least, greatest): beyond these the service cannot keep its promises
# (state holds window + allowed lateness of traffic; timers and dates must stay representable).
_DURATION_RANGES = (
    (
        "WALKTHROUGHS_ATTRIBUTION_WINDOW",
        "attribution_window",
        timedelta(milliseconds=1),
        366 * _DAY,
    ),
    ("WALKTHROUGHS_HOLD", "hold", timedelta(0), 366 * _DAY),
    ("WALKTHROUGHS_ALLOWED_LATENESS", "allowed_lateness", timedelta(0), 366 * _DAY),
    (
        "WALKTHROUGHS_FLUSH_INTERVAL",
        "flush_interval",
        timedelta(milliseconds=1),
        timedelta(hours=1),
    ),
    ("WALKTHROUGHS_STARTUP_TIMEOUT", "startup_timeout", timedelta(seconds=1), timedelta(hours=1)),
    ("WALKTHROUGHS_MONGO_RETRY_LIMIT", "mongo_retry_limit", timedelta(0), _DAY),
    ("WALKTHROUGHS_MONGO_TIMEOUT", "mongo_timeout", timedelta(seconds=1), timedelta(minutes=10)),
    ("WALKTHROUGHS_STALL_LIMIT", "stall_limit", timedelta(seconds=1), timedelta(hours=1)),
    ("WALKTHROUGHS_ERASURE_HORIZON", "erasure_horizon", timedelta(0), 3660 * _DAY),
)


@dataclass(frozen=True)
class Settings:
    """The service's configuration; defaults are the contract's.

    Durations are ``timedelta``. ``kafka_extra`` holds librdkafka properties from
    ``WALKTHROUGHS_KAFKA_*``: it may carry secrets, so it is left out of ``repr``; log
    ``describe()`` instead.
    """

    kafka_bootstrap: str = "localhost:9092"
    messages_topics: tuple[str, ...] = ("zr-messages", "zr-messages-backfill")
    walkins_topics: tuple[str, ...] = ("walkins", "walkins-backfill")
    output_topic: str = "walkthroughs"
    dlq_topic: str = "walkthroughs-dlq"
    erasures_topic: str = "walkthroughs-erasures"
    mongo_uri: str = field(default="mongodb://localhost:27017", repr=False)
    mongo_db: str = "walkthroughs"
    attribution_window: timedelta = timedelta(days=7)
    hold: timedelta = timedelta(seconds=30)
    allowed_lateness: timedelta = timedelta(hours=24)
    flush_interval: timedelta = timedelta(seconds=5)
    stop_at_end: bool = False
    # Beyond the contract: operational limits (docs/configuration.md).
    startup_timeout: timedelta = timedelta(seconds=30)
    mongo_enabled: bool = True
    mongo_retry_limit: timedelta = timedelta(minutes=2)
    mongo_timeout: timedelta = timedelta(seconds=20)
    health_port: int = 0
    stall_limit: timedelta = timedelta(seconds=60)
    log_level: str = "INFO"
    erasure_horizon: timedelta = timedelta(days=30)
    timezone_aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    output_format: str = "protobuf"
    output_schema_id: int = 0  # 0: none given (registered at start-up when the format needs one)
    schema_registry_url: str = field(default="", repr=False)
    schema_registry_token: str = field(default="", repr=False)
    kafka_extra: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def __post_init__(self) -> None:
        """Check each duration's range and the rules that tie settings together."""
        for name, attr, least, greatest in _DURATION_RANGES:
            value: timedelta = getattr(self, attr)
            if not least <= value <= greatest:
                msg = (
                    f"{name}={_fmt(value)} is out of range: use a duration from {_fmt(least)} "
                    f"to {_fmt(greatest)}"
                )
                raise ConfigError(msg)
        if self.hold > self.allowed_lateness:
            msg = (
                f"WALKTHROUGHS_HOLD ({_fmt(self.hold)}) must not exceed "
                f"WALKTHROUGHS_ALLOWED_LATENESS ({_fmt(self.allowed_lateness)}): a walk-in is "
                "kept for allowed_lateness after it is read and must be decided before that"
            )
            raise ConfigError(msg)
        shared = set(self.messages_topics) & set(self.walkins_topics)
        if shared:
            msg = (
                "WALKTHROUGHS_MESSAGES_TOPICS and WALKTHROUGHS_WALKINS_TOPICS share "
                f"{sorted(shared)}: a topic carries one kind of event"
            )
            raise ConfigError(msg)
        inputs = set(self.messages_topics) | set(self.walkins_topics)
        if self.erasures_topic in inputs:
            msg = (
                f"WALKTHROUGHS_ERASURES_TOPIC={self.erasures_topic!r} is also an event topic: "
                "erasure requests need a topic of their own"
            )
            raise ConfigError(msg)
        outputs = (
            ("WALKTHROUGHS_OUTPUT_TOPIC", self.output_topic),
            ("WALKTHROUGHS_DLQ_TOPIC", self.dlq_topic),
        )
        for name, topic in outputs:
            if topic == self.erasures_topic:
                msg = f"WALKTHROUGHS_ERASURES_TOPIC={topic!r} is also {name}: the two must differ"
                raise ConfigError(msg)
        inputs.add(self.erasures_topic)
        for name, topic in outputs:
            if topic in inputs:
                msg = f"{name}={topic!r} is also an input topic: the service would read its output"
                raise ConfigError(msg)
        if self.output_topic == self.dlq_topic:
            msg = "WALKTHROUGHS_OUTPUT_TOPIC and WALKTHROUGHS_DLQ_TOPIC must differ"
            raise ConfigError(msg)
        self._check_output_format()

    def _check_output_format(self) -> None:
        """A schema id or a registry only with the framed format, which needs one of them."""
        if self.output_format == "confluent":
            if not (self.output_schema_id or self.schema_registry_url):
                msg = (
                    "WALKTHROUGHS_OUTPUT_FORMAT=confluent needs WALKTHROUGHS_OUTPUT_SCHEMA_ID or "
                    "WALKTHROUGHS_SCHEMA_REGISTRY_URL (to register the schema at start-up)"
                )
                raise ConfigError(msg)
        elif self.output_schema_id:
            msg = (
                "WALKTHROUGHS_OUTPUT_SCHEMA_ID is set but WALKTHROUGHS_OUTPUT_FORMAT is "
                f"{self.output_format}: set WALKTHROUGHS_OUTPUT_FORMAT=confluent to frame output"
            )
            raise ConfigError(msg)
        if self.schema_registry_token and not self.schema_registry_url:
            msg = (
                "WALKTHROUGHS_SCHEMA_REGISTRY_TOKEN is set without WALKTHROUGHS_SCHEMA_REGISTRY_URL"
            )
            raise ConfigError(msg)

    def registry_config(self) -> dict[str, str]:
        """The settings of confluent-kafka's ``SchemaRegistryClient`` (credentials included)."""
        config = {"url": self.schema_registry_url}
        if self.schema_registry_token:
            config["bearer.auth.credentials.source"] = "STATIC_TOKEN"
            config["bearer.auth.token"] = self.schema_registry_token
        return config

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping (pass ``os.environ``).

        Raises:
            ConfigError: a variable is unknown or malformed; the message names it.
        """
        unknown = sorted(
            k
            for k in environ
            if k.startswith(PREFIX) and k not in _PARSERS and not k.startswith(KAFKA_PREFIX)
        )
        if unknown:
            raise ConfigError(
                "; ".join(f"unknown setting {name}{did_you_mean(name)}" for name in unknown)
            )
        values: dict[str, Any] = {}
        for name, (attr, parse) in _PARSERS.items():
            if name in environ:
                values[attr] = parse(name, environ[name])
        values["kafka_extra"] = MappingProxyType(_kafka_extra(environ))
        return cls(**values)

    def rules(self) -> Rules:
        """Return the attribution timing in the units the pure logic uses (ns)."""
        return Rules(
            window_ns=_ns(self.attribution_window),
            hold_ns=_ns(self.hold),
            lateness_ns=_ns(self.allowed_lateness),
            erasure_horizon_ns=_ns(self.erasure_horizon),
        )

    def kafka_config(self) -> dict[str, str]:
        """Return the librdkafka settings every Kafka client of the service starts from."""
        return {**self.kafka_extra, "bootstrap.servers": self.kafka_bootstrap}

    def describe(self) -> dict[str, object]:
        """Return the settings as loggable fields, with secrets redacted."""
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "messages_topics": list(self.messages_topics),
            "walkins_topics": list(self.walkins_topics),
            "output_topic": self.output_topic,
            "dlq_topic": self.dlq_topic,
            "erasures_topic": self.erasures_topic,
            "mongo_uri": redact_uri(self.mongo_uri),
            "mongo_db": self.mongo_db,
            "attribution_window": _fmt(self.attribution_window),
            "hold": _fmt(self.hold),
            "allowed_lateness": _fmt(self.allowed_lateness),
            "flush_interval": _fmt(self.flush_interval),
            "stop_at_end": self.stop_at_end,
            "startup_timeout": _fmt(self.startup_timeout),
            "mongo_enabled": self.mongo_enabled,
            "mongo_retry_limit": _fmt(self.mongo_retry_limit),
            "mongo_timeout": _fmt(self.mongo_timeout),
            "health_port": self.health_port,
            "stall_limit": _fmt(self.stall_limit),
            "log_level": self.log_level,
            "erasure_horizon": _fmt(self.erasure_horizon),
            "timezone_aliases": dict(sorted(self.timezone_aliases.items())),
            "output_format": self.output_format,
            "output_schema_id": self.output_schema_id,
            "schema_registry_url": redact_uri(self.schema_registry_url),
            "schema_registry_token": HIDDEN if self.schema_registry_token else "",
            "kafka_extra": {
                k: ("***" if is_secret_property(k) else v)
                for k, v in sorted(self.kafka_extra.items())
            },
        }


# ---------------------------------------------------------------------------------------------
# Parsers: (variable name, raw text) -> value, or ConfigError naming the variable
# ---------------------------------------------------------------------------------------------


def parse_duration(name: str, raw: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``24h``, ``7d``, ``250ms``, ``1h30m`` or ``0``."""
    text = raw.strip()
    if text == "0":
        return timedelta(0)
    parts = list(_DURATION_PART.finditer(text))
    if not text or "".join(p.group(0) for p in parts) != text:
        msg = f"{name}={raw!r} is not a duration: use {_DURATION_FORM}"
        raise ConfigError(msg)
    try:
        return sum((int(p.group(1)) * _DURATION_UNITS[p.group(2)] for p in parts), timedelta(0))
    except OverflowError as exc:
        msg = f"{name}={raw!r} is too large a duration"
        raise ConfigError(msg) from exc


def parse_topics(name: str, raw: str) -> tuple[str, ...]:
    """Parse a comma-separated list of one or more distinct Kafka topic names."""
    topics = tuple(t.strip() for t in raw.split(","))
    if not raw.strip() or any(not _is_topic(t) for t in topics):
        msg = (
            f"{name}={raw!r} is not a topic list: use comma-separated names of letters, digits, "
            "'.', '_' or '-' (at most 249 characters each), e.g. walkins,walkins-backfill"
        )
        raise ConfigError(msg)
    if len(set(topics)) != len(topics):
        msg = f"{name}={raw!r} names a topic twice"
        raise ConfigError(msg)
    return topics


def parse_topic(name: str, raw: str) -> str:
    """Parse a single Kafka topic name."""
    topic = raw.strip()
    if not _is_topic(topic):
        msg = f"{name}={raw!r} is not a topic name: use letters, digits, '.', '_' or '-'"
        raise ConfigError(msg)
    return topic


def parse_bool(name: str, raw: str) -> bool:
    """Parse 1/0, true/false, yes/no, on/off (any case)."""
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    msg = f"{name}={raw!r} is not a boolean: use 1 or 0 (true/false, yes/no also work)"
    raise ConfigError(msg)


def parse_bootstrap(name: str, raw: str) -> str:
    """Parse a comma-separated list of ``host:port`` Kafka bootstrap servers (ports 1-65535)."""
    servers = [s.strip() for s in raw.split(",")]
    if not raw.strip() or not all(_BOOTSTRAP_SERVER.fullmatch(s) for s in servers):
        msg = f"{name}={raw!r} is not a server list: use host:port[,host:port...]"
        raise ConfigError(msg)
    for server in servers:
        port = int(server.rpartition(":")[2])
        if not 1 <= port <= _MAX_PORT:
            msg = f"{name}={raw!r}: port {port} of {server!r} is out of range: use 1 to {_MAX_PORT}"
            raise ConfigError(msg)
    return ",".join(servers)


def parse_port(name: str, raw: str) -> int:
    """Parse a TCP port to listen on, or 0 for none."""
    _check_int_range(name, raw, 0, _MAX_PORT)
    return int(raw.strip())


def parse_mongo_uri(name: str, raw: str) -> str:
    """Accept a ``mongodb://`` or ``mongodb+srv://`` connection string (quoted redacted).

    The user name and password must be percent-encoded: a raw ``/``, ``?``, ``#``, ``@`` or a
    second ``:`` makes a URI that client libraries split in the middle of the password, and then
    quote a piece of it in their error.
    """
    uri = raw.strip()
    if not uri.startswith(("mongodb://", "mongodb+srv://")) or len(uri) <= len("mongodb://"):
        msg = f"{name}={redact_uri(raw)!r} is not a MongoDB URI: use mongodb://host:port[/...]"
        raise ConfigError(msg)
    authority = uri.partition("://")[2]
    if "@" in authority:
        userinfo = authority.rpartition("@")[0]
        raw_chars = sorted(set(userinfo) & set("/?#@")) or (
            [":"] if userinfo.count(":") > 1 else []
        )
        if raw_chars:
            msg = (
                f"{name}={redact_uri(raw)!r}: the user name or password holds a raw "
                f"{raw_chars[0]!r}; percent-encode both (urllib.parse.quote_plus)"
            )
            raise ConfigError(msg)
    return uri


OUTPUT_FORMATS = ("protobuf", "confluent")
URI_SETTINGS = ("WALKTHROUGHS_MONGO_URI", "WALKTHROUGHS_SCHEMA_REGISTRY_URL")
SECRET_SETTINGS = ("WALKTHROUGHS_SCHEMA_REGISTRY_TOKEN",)


def environment_secrets_of(environ: Mapping[str, str]) -> list[str]:
    """Every secret a raw environment holds, for the redactor (before settings are parsed)."""
    return environment_secrets(environ, URI_SETTINGS, KAFKA_PREFIX, SECRET_SETTINGS)


def parse_output_format(name: str, raw: str) -> str:
    """Accept how walkthroughs are written: bare protobuf, or framed for a Schema Registry."""
    value = raw.strip().lower()
    if value not in OUTPUT_FORMATS:
        msg = f"{name}={raw!r} is not an output format: use {' or '.join(OUTPUT_FORMATS)}"
        raise ConfigError(msg)
    return value


def parse_schema_id(name: str, raw: str) -> int:
    """Accept a Schema Registry schema id (a positive 32-bit number)."""
    _check_int_range(name, raw, 1, 2**31 - 1)
    return int(raw.strip())


def parse_registry_url(name: str, raw: str) -> str:
    """Accept ``http(s)://[user:password@]host[:port][/path]`` (``mock://`` for tests)."""
    url = raw.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in {"http", "https", "mock"} or not rest:
        msg = (
            f"{name}={redact_uri(raw)!r} is not a Schema Registry URL: use "
            "http(s)://host:port, with user:password@ before the host for basic auth"
        )
        raise ConfigError(msg)
    return url


def parse_token(name: str, raw: str) -> str:
    """Accept a bearer token (never shown: the redactor hides it)."""
    token = raw.strip()
    if not token or any(c.isspace() for c in token):
        msg = f"{name} must be one token, without spaces"
        raise ConfigError(msg)
    return token


def parse_mongo_db(name: str, raw: str) -> str:
    """Accept a MongoDB database name: 1-63 characters, no path, dot, space, quote or wildcard."""
    db = raw.strip()
    if not db or len(db) > 63 or _MONGO_DB_FORBIDDEN & set(db):
        msg = (
            f"{name}={raw!r} is not a database name: use 1-63 characters without "
            '/\\. "$*<>:|? (letters only is the most portable)'
        )
        raise ConfigError(msg)
    return db


def parse_log_level(name: str, raw: str) -> str:
    """Accept a Python logging level name."""
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        msg = f"{name}={raw!r} is not a log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        raise ConfigError(msg)
    return level


def parse_timezone_aliases(name: str, raw: str) -> Mapping[str, str]:
    """Parse ``Name=Area/Zone,Other Name=Area/Zone``: zones tzdata lacks, mapped to ones it has.

    For walk-ins whose devices send a Windows zone name or a retired alias.
    """
    aliases: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        alias, sep, target = (s.strip() for s in item.partition("="))
        if not sep or not alias or target not in TZDATA_ZONES:
            msg = (
                f"{name}: {item!r} is not an alias: use NAME=ZONE pairs, comma-separated, each "
                "ZONE a tzdata zone name, e.g. Pacific Standard Time=America/Los_Angeles"
            )
            raise ConfigError(msg)
        if alias in TZDATA_ZONES:
            msg = f"{name}: {alias!r} is a tzdata zone already: an alias cannot redefine it"
            raise ConfigError(msg)
        aliases[alias] = target
    return MappingProxyType(aliases)


_PARSERS: dict[str, tuple[str, Any]] = {
    "WALKTHROUGHS_KAFKA_BOOTSTRAP": ("kafka_bootstrap", parse_bootstrap),
    "WALKTHROUGHS_MESSAGES_TOPICS": ("messages_topics", parse_topics),
    "WALKTHROUGHS_WALKINS_TOPICS": ("walkins_topics", parse_topics),
    "WALKTHROUGHS_OUTPUT_TOPIC": ("output_topic", parse_topic),
    "WALKTHROUGHS_DLQ_TOPIC": ("dlq_topic", parse_topic),
    "WALKTHROUGHS_ERASURES_TOPIC": ("erasures_topic", parse_topic),
    "WALKTHROUGHS_ERASURE_HORIZON": ("erasure_horizon", parse_duration),
    "WALKTHROUGHS_MONGO_URI": ("mongo_uri", parse_mongo_uri),
    "WALKTHROUGHS_MONGO_DB": ("mongo_db", parse_mongo_db),
    "WALKTHROUGHS_ATTRIBUTION_WINDOW": ("attribution_window", parse_duration),
    "WALKTHROUGHS_HOLD": ("hold", parse_duration),
    "WALKTHROUGHS_ALLOWED_LATENESS": ("allowed_lateness", parse_duration),
    "WALKTHROUGHS_FLUSH_INTERVAL": ("flush_interval", parse_duration),
    "WALKTHROUGHS_STOP_AT_END": ("stop_at_end", parse_bool),
    "WALKTHROUGHS_STARTUP_TIMEOUT": ("startup_timeout", parse_duration),
    "WALKTHROUGHS_MONGO_ENABLED": ("mongo_enabled", parse_bool),
    "WALKTHROUGHS_MONGO_RETRY_LIMIT": ("mongo_retry_limit", parse_duration),
    "WALKTHROUGHS_MONGO_TIMEOUT": ("mongo_timeout", parse_duration),
    "WALKTHROUGHS_HEALTH_PORT": ("health_port", parse_port),
    "WALKTHROUGHS_STALL_LIMIT": ("stall_limit", parse_duration),
    "WALKTHROUGHS_LOG_LEVEL": ("log_level", parse_log_level),
    "WALKTHROUGHS_TIMEZONE_ALIASES": ("timezone_aliases", parse_timezone_aliases),
    "WALKTHROUGHS_OUTPUT_FORMAT": ("output_format", parse_output_format),
    "WALKTHROUGHS_OUTPUT_SCHEMA_ID": ("output_schema_id", parse_schema_id),
    "WALKTHROUGHS_SCHEMA_REGISTRY_URL": ("schema_registry_url", parse_registry_url),
    "WALKTHROUGHS_SCHEMA_REGISTRY_TOKEN": ("schema_registry_token", parse_token),
}


def _kafka_extra(environ: Mapping[str, str]) -> dict[str, str]:
    extra: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(KAFKA_PREFIX) or name in _PARSERS:
            continue
        suffix = name[len(KAFKA_PREFIX) :]
        if not re.fullmatch(r"[A-Z0-9]+(?:_{1,2}[A-Z0-9]+)*", suffix):
            msg = (
                f"{name} is not a Kafka client setting: write the librdkafka property in upper "
                "case with '.' as '_' and '_' as '__', e.g. WALKTHROUGHS_KAFKA_SECURITY_PROTOCOL"
            )
            raise ConfigError(msg)
        prop = "_".join(part.replace("_", ".") for part in suffix.lower().split("__"))
        if prop in _RESERVED_KAFKA_PROPERTIES or prop in _CLIENT_OBJECTS:
            instead = (
                " (WALKTHROUGHS_KAFKA_BOOTSTRAP sets it)" if prop == "bootstrap.servers" else ""
            )
            msg = f"{name} sets {prop!r}, which the service manages itself{instead}"
            raise ConfigError(msg)
        if prop in _KAFKA_INT_RANGES:
            _check_int_range(name, value, *_KAFKA_INT_RANGES[prop])
        extra[prop] = value
    return extra


def did_you_mean(variable: str) -> str:
    """A hint naming the setting a misspelt ``WALKTHROUGHS_*`` variable most likely meant.

    Among the service's own settings and every librdkafka property as ``WALKTHROUGHS_KAFKA_*``:
    ``WALKTHROUGHS_KAFKA_BOOTSTRAPP`` is a pass-through property to librdkafka, which refuses it,
    but what was meant is ``WALKTHROUGHS_KAFKA_BOOTSTRAP``.
    """
    settable = PROPERTIES - _RESERVED_KAFKA_PROPERTIES
    known = [v for v in (*_PARSERS, *(kafka_variable(p) for p in settable)) if v != variable]
    found = difflib.get_close_matches(variable, known, n=1, cutoff=0.85)
    if found:
        return f" (did you mean {found[0]}?)"
    return " (docs/configuration.md lists the settings)"


def kafka_variable(prop: str) -> str:
    """Return the ``WALKTHROUGHS_KAFKA_*`` variable that sets a librdkafka property."""
    return KAFKA_PREFIX + "__".join(part.replace(".", "_") for part in prop.upper().split("_"))


def _check_int_range(name: str, raw: str, least: int, greatest: int) -> None:
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not least <= value <= greatest:
        shown = "***" if is_secret_property(name) else repr(raw)
        msg = f"{name}={shown} is out of range: use a whole number from {least} to {greatest}"
        raise ConfigError(msg)


def _is_topic(topic: str) -> bool:
    return bool(_TOPIC.fullmatch(topic)) and topic not in {".", ".."}


def _ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1000


def _fmt(value: timedelta) -> str:
    """Format a duration in the form the settings accept (largest units first)."""
    ms = value // timedelta(milliseconds=1)
    if ms == 0:
        return "0"
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        step = _DURATION_UNITS[unit] // timedelta(milliseconds=1)
        count, ms = divmod(ms, step)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def resumed_window(stored_ns: int, running_ns: int) -> int:
    """The attribution window a resumed shard goes on under: the running one.

    Raises:
        ConfigError: the shard was built under another window (``stored_ns``; 0 for a shard
            that never said). Its retained walk-ins hold bests found under the old window, and
            messages the new one would credit may have been let go already: resuming would be
            wrong without a trace, so the process stops at start-up instead.
    """
    if stored_ns and stored_ns != running_ns:
        running, stored = (
            _fmt(timedelta(microseconds=ns // 1000)) for ns in (running_ns, stored_ns)
        )
        msg = (
            f"WALKTHROUGHS_ATTRIBUTION_WINDOW is {running}, but the recovery store was written "
            f"under {stored}: set it back, or start from a new recovery store (see "
            "docs/operations.md, 'Change the attribution window')"
        )
        raise ConfigError(msg)
    return running_ns


DEFAULT_RULES = Settings().rules()
"""The attribution timing of the default settings (7 d window, 30 s hold, 24 h allowed
lateness): what benchmarks and tools use when nothing is configured."""
