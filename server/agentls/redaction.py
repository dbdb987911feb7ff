"""Removing secrets from text before it is shown, logged or stored.

This module owns one rule: a message that leaves a backend (an error, a log line, a history
entry) passes through ``scrub`` first. ``scrub`` removes the exact secret values the caller knows
about (the API key it just read from the environment) and, as a second net, anything shaped like a
credential, because a provider may echo a key the caller never saw (a gateway's own token, a key
from another variable). The shapes are the content detectors of ``context/secrets.py`` (one list:
private keys, cloud and provider keys, tokens, URL passwords...) plus a few looser ones that only
make sense in messages: any value after a label (``x-api-key: ...``, ``password=...``) and short
``sk-...``/GitHub/``Bearer`` values, since a log line is better over-scrubbed than leaky.

``RedactionFilter`` applies the same rule to log records, for handlers that may receive text from
libraries we do not control.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
"""What a removed secret is replaced with: visible, so a reader knows something was there."""

MIN_SECRET_LENGTH = 6
"""Shorter known values are not replaced: scrubbing "abc" everywhere would mangle ordinary text,
and a key that short is not a real credential anyway."""

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Labelled values: "Authorization: Bearer ...", "x-api-key: ...", OPENAI_API_KEY=..., password=
    (
        re.compile(
            r"(?i)\b([A-Za-z0-9_\-]*(?:api[_-]?key|access[_-]?token|secret|passw(?:or)?d)"
            r"|authorization)(\"?\s*[:=]\s*\"?)(?:(?:bearer|basic)\s+)?[^\s\"',;}&]{4,}"
        ),
        rf"\1\2{REDACTED}",
    ),
    # A bearer token on its own (the scheme stays so the message still reads well).
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), rf"\1 {REDACTED}"),
    # Anthropic and OpenAI keys (sk-ant-..., sk-proj-..., sk-...).
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    # GitHub tokens (classic and fine-grained), shorter than the content detector insists on.
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
)
"""Log-only credential shapes and what each becomes, applied after the content detectors (AWS,
Google, Slack, PGP, URL passwords... are theirs). Labels and schemes are kept, values never."""


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` without the given secret values and without well-known credential shapes.

    Args:
        text: Any message: an exception text, a provider's error body, a log line.
        secrets: Exact values to remove (API keys read from the environment). ``None``, empty and
            very short values are ignored (see ``MIN_SECRET_LENGTH``).

    Returns:
        The text with every secret replaced by ``[redacted]``. Exact values go first, longest first,
        so a key that contains another known value is removed whole.
    """
    known = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    for value in known:
        text = text.replace(value, REDACTED)
    # Imported here: the log filter is installed before anything else is imported at start-up.
    from agentls.context.secrets import redact_text

    text, _findings = redact_text(text, marker=REDACTED)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


class RedactionFilter(logging.Filter):
    """A logging filter that scrubs each record's final message (and its traceback text).

    It formats the message once (``record.getMessage()``), scrubs it and stores it back with no
    arguments, so a handler that formats again sees the clean text. Attach it to handlers, not
    loggers, so records from every library pass through it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Remember the exact values to remove besides the well-known shapes."""
        super().__init__()
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record in place; never drops it."""
        message = record.getMessage()
        clean = scrub(message, self._secrets)
        if clean != message or record.args:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self._secrets)
        return True


_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_CHARS = 8
"""Shorter values are not scrubbed by value: they would blank out ordinary words."""


def secret_environment_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a secret.

    The server's log filter scrubs these by value, so a key that has no well-known shape (a local
    gateway's token, say) still never reaches a log line.
    """
    env = os.environ if environ is None else environ
    return [
        value
        for name, value in env.items()
        if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS
    ]
