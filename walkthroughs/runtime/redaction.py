"""Secrets out of every line the service writes: settings, errors, tracebacks.

Two layers, because one is never enough against a careless setting:

* **Redacted forms.** ``redact_uri`` hides a URI's userinfo (whatever it holds: a password with a
  raw ``/``, ``@``, ``:`` or ``?`` is hidden up to the *last* ``@``) and the values of query
  options that carry credentials (``authMechanismProperties``, or any option whose name contains
  password, secret, token or key). ``is_secret_property`` says which Kafka client properties to
  hide (``sasl.*`` except the mechanism, ``ssl.key.*``, anything naming a password, secret,
  token, key, credential or JAAS config).
* **A scrubber over the output.** ``Redactor`` knows the secret values themselves (and the
  pieces a client library could quote from a malformed URI, and their percent-decoded forms) and
  replaces them with ``***`` in any text: every log line and every traceback goes through the
  process's redactor (``install``), so a message a library builds from a secret is cut too.

Pure, apart from ``install``, which the composition root calls once.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from urllib.parse import unquote, unquote_plus

HIDDEN = "***"
_SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "credential", "jaas")
_PUBLIC_SASL = {"sasl.mechanism", "sasl.mechanisms"}
_CREDENTIAL_OPTIONS = {"authmechanismproperties"}  # values like AWS_SESSION_TOKEN:<token>
_MIN_SECRET = 3  # shorter values are not scrubbed from text: they would garble every line
_PIECE_SPLIT = re.compile(r"[/:@?#&=,;]")
_OPTION = re.compile(r"([^&;=]+)=([^&;]*)")


def is_secret_property(name: str) -> bool:
    """Tell whether a Kafka client property (``sasl.password``...) or option name is secret."""
    lower = name.lower()
    if lower.startswith("sasl.") and lower not in _PUBLIC_SASL:
        return True
    return lower.startswith("ssl.key.") or any(word in lower for word in _SECRET_WORDS)


def _split_uri(uri: str) -> tuple[str, str | None, str]:
    """Return (scheme://, userinfo or None, the rest) of a URI, however malformed."""
    scheme_end = uri.find("://")
    head, rest = ("", uri) if scheme_end < 0 else (uri[: scheme_end + 3], uri[scheme_end + 3 :])
    at = rest.rfind("@")  # the last one: a raw "@" in a password comes before it
    if at < 0:
        return head, None, rest
    return head, rest[:at], rest[at + 1 :]


def _secret_options(rest: str) -> Iterator[re.Match[str]]:
    """The ``name=value`` query options of the part after the userinfo that carry secrets."""
    _, _, query = rest.partition("?")
    return (m for m in _OPTION.finditer(query) if _secret_option(m.group(1)))


def _secret_option(name: str) -> bool:
    return name.lower() in _CREDENTIAL_OPTIONS or is_secret_property(name)


def redact_uri(uri: str) -> str:
    """Return the URI with its password (or whole userinfo) and credential options hidden.

    ``mongodb://svc:p/a@ss@host/?tlsCertificateKeyFilePassword=x`` becomes
    ``mongodb://svc:***@host/?tlsCertificateKeyFilePassword=***``. A userinfo without ``:`` is
    hidden whole: it may be a password written without a user.
    """
    head, userinfo, rest = _split_uri(uri)
    shown = head
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        shown += f"{user}:{HIDDEN}@" if colon else f"{HIDDEN}@"
    host, question, query = rest.partition("?")
    if question:
        host += "?" + _OPTION.sub(_hide_secret_option, query)
    return shown + host


def _hide_secret_option(option: re.Match[str]) -> str:
    name = option.group(1)
    return f"{name}={HIDDEN}" if _secret_option(name) else option.group(0)


def uri_secrets(uri: str) -> list[str]:
    """Return what ``Redactor`` must hide of a URI.

    That is the values ``redact_uri`` hides, their percent-decoded forms, and the pieces a
    parser that splits at ``/``, ``:`` or ``@`` could quote in an error.
    """
    _, userinfo, rest = _split_uri(uri)
    hidden: list[str] = []
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        secret = password if colon else userinfo
        hidden += [secret, *_PIECE_SPLIT.split(secret)]
        if colon:
            hidden += _PIECE_SPLIT.split(user)[1:]  # a raw ":" or "/" moves pieces into the user
    hidden += [option.group(2) for option in _secret_options(rest)]
    hidden += [piece for value in list(hidden) for piece in _PIECE_SPLIT.split(value)]
    return hidden + [decoded(v) for v in hidden for decoded in (unquote, unquote_plus)]


def environment_secrets(
    environ: Mapping[str, str],
    uri_variables: Iterable[str],
    prefix: str,
    secret_variables: Iterable[str] = (),
) -> list[str]:
    """Return the secrets of a raw environment, before any setting is parsed.

    Those of the URI variables, the whole value of each secret variable, and the value of every
    variable under ``prefix`` whose property name is secret (``WALKTHROUGHS_KAFKA_SASL_PASSWORD``).
    """
    found = [secret for name in uri_variables for secret in uri_secrets(environ.get(name, ""))]
    found += [environ[name] for name in secret_variables if environ.get(name)]
    for name, value in environ.items():
        if name.startswith(prefix) and is_secret_property(name[len(prefix) :].replace("_", ".")):
            found.append(value)
    return found


class Redactor:
    """Replaces known secret values by ``***`` in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if len(s) >= _MIN_SECRET}
        ordered = sorted(unique, key=len, reverse=True)  # longest first: no half-hidden secret
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def scrub(self, text: str) -> str:
        """Return ``text`` with every known secret hidden."""
        if self._pattern is None:
            return text
        return self._pattern.sub(HIDDEN, text)


_process_redactor = Redactor()


def scrub(text: str) -> str:
    """Hide the process's secrets (those given to ``install``) in ``text``."""
    return _process_redactor.scrub(text)


def install(redactor: Redactor) -> None:
    """Make ``redactor`` the process's: log lines (``logs``) and uncaught tracebacks use it.

    Python prints an uncaught exception (Bytewax re-raises a worker's error in the main thread)
    through ``sys.excepthook`` and a thread's through ``threading.excepthook``: both are wrapped
    so that the text they print is scrubbed first.
    """
    global _process_redactor  # noqa: PLW0603  # one redactor per process, set at start-up
    _process_redactor = redactor
    sys.excepthook = _scrubbed_excepthook
    threading.excepthook = _scrubbed_thread_excepthook


def _format(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> str:
    import traceback  # noqa: PLC0415  # only when something goes wrong

    return "".join(traceback.format_exception(kind, value, tb))


def _scrubbed_excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    sys.stderr.write(scrub(_format(kind, value, tb)))


def _scrubbed_thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    text = _format(args.exc_type, args.exc_value, args.exc_traceback)
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(f"Exception in thread {name}:\n{scrub(text)}")
