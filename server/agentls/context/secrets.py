"""Secrets inside included text: the owner of what counts as a secret and how it is redacted.

The workspace's deny-list (``workspace/filters.py``) keeps files *named* like secrets out of the
prompt. This module looks *inside* the text that does go in: private key blocks, AWS access keys,
GitHub, GitLab and Slack tokens, JWTs, and generic ``key = value`` assignments whose value is long
and random enough (Shannon entropy) to be a credential rather than a word. Each match is replaced by
a visible ``[REDACTED:kind]`` marker, and its line and kind are reported so the manifest can say
what was hidden without repeating it.

Cost. Scanning is regular-expression work on bytes; each pattern only runs when a cheap literal
test (``bytes in bytes``, memchr speed) says it could match, so clean code costs little. A scan's
result depends only on the content, so ``SecretScanner`` remembers it by the content's xxh3 hash
(the loader computed it already): a warm run re-scans nothing. ``agentls bench`` (scenario
``secrets``) reports the cold cost per MB and the warm cost.

The scanner is used on the event loop only (its memo is unsynchronised); it never logs the text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import xxhash
from cachetools import LRUCache

__all__ = ["Finding", "Redaction", "SecretScanner", "redact", "scan"]

MEMO_ENTRIES = 65_536
"""How many distinct contents the scanner remembers (about 100 bytes each when clean)."""

MIN_GENERIC_ENTROPY = 3.5
"""Bits per character a generic assignment's value needs to count as a secret.

English words and identifiers sit near 2.5-3.2 (``password_reset_handler``: 3.3); random tokens of
16+ characters from a 62-symbol alphabet are near 4 or above.
"""

MIN_GENERIC_LENGTH = 16
"""Shortest value of a generic assignment considered (shorter values are passwords in examples)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret found in a text: where (in the redacted output) and what kind."""

    line: int
    """1-based line of the match's start."""
    kind: str
    """``private_key``, ``aws_access_key``, ``github_token``, ``gitlab_token``, ``slack_token``,
    ``jwt`` or ``generic_secret``."""
    start: int
    """Byte offset of the marker in the redacted text (used to keep only what a cut leaves)."""


@dataclass(frozen=True, slots=True)
class Redaction:
    """A text with its secrets replaced, and what was replaced."""

    data: bytes
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A kind of secret: the literals a match starts with, the pattern, a check of the value."""

    kind: str
    anchors: tuple[bytes, ...]
    """Every match starts with one of these (found with ``bytes.find``, memchr speed)."""
    pattern: re.Pattern[bytes]
    """Tried only at an anchor (``match``, never a scan of the whole text)."""
    group: int = 0
    """The group that is redacted (the generic rule keeps the key name visible)."""
    accept: Callable[[bytes, bytes], bool] | None = None
    """Given the value and the byte after it, whether it really is a secret."""
    fold_case: bool = False
    """Anchors are lowercase and looked up in the lowercased text."""


def _entropy(value: bytes) -> float:
    """Shannon entropy of a value, in bits per byte."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_DOTTED_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_SEPARATORS = re.compile(rb"[_.-]")
_WORD_PART = 8
"""Longest part of a separated value that still reads as a word (``sk_live_<24 random>`` has a
longer one, ``pkcs8_priv_key_info_st`` has none)."""
_HAS_DIGIT = re.compile(rb"[0-9]")
_HAS_LETTER = re.compile(rb"[A-Za-z]")


def _random_enough(value: bytes, after: bytes) -> bool:
    """Whether a generic assignment's value looks like a credential rather than code or prose.

    A call (``auth = base64.b64encode(...)``), a dotted name (``token = self.tokens.next``) or
    an identifier of short words (``KEY_INFO = pkcs8_priv_key_info_st``) is code; a credential
    mixes letters and digits and is close to random.
    """
    if len(value) < MIN_GENERIC_LENGTH or after in (b"(", b"[", b"{"):
        return False
    if _DOTTED_NAME.fullmatch(value) is not None:
        return False
    parts = _SEPARATORS.split(value)
    if len(parts) > 2 and max(map(len, parts)) <= _WORD_PART:
        return False  # an identifier of short words (pkcs8_priv_key_info_st), not a credential
    if _HAS_DIGIT.search(value) is None or _HAS_LETTER.search(value) is None:
        return False
    return _entropy(value) >= MIN_GENERIC_ENTROPY


_RULES: tuple[_Rule, ...] = (
    _Rule(
        "private_key",
        (b"-----BEGIN",),
        re.compile(
            rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            rb"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*)",
            re.DOTALL,
        ),
    ),
    _Rule(
        "aws_access_key",
        (b"AKIA", b"ASIA"),  # long-term and temporary access key ids
        re.compile(rb"(?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ),
    _Rule(
        "github_token",
        (b"gh", b"github_pat_"),
        re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b"),
    ),
    _Rule(
        "gitlab_token",
        (b"gl", b"GR1348941"),
        re.compile(rb"\b(?:(?:glpat|gldt|glrt|glptt)-|GR1348941)[A-Za-z0-9_-]{20,}"),
    ),
    _Rule(
        "slack_token",
        (b"xox", b"https://hooks.slack.com/"),
        re.compile(
            rb"\bxox[abposr]-[A-Za-z0-9-]{10,}"
            rb"|https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
        ),
    ),
    _Rule(
        "jwt",
        (b"eyJ",),
        re.compile(rb"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ),
    _Rule(
        "generic_secret",
        (b"key", b"secret", b"token", b"passw", b"pwd", b"credential", b"auth"),
        re.compile(
            rb"(?i)(?:key|secret|token|passw(?:or)?d|pwd|credential|auth)[A-Za-z0-9_.-]{0,40}"
            rb"[\"']?[ \t]*(?::=|=|:)[ \t]*[\"']?([A-Za-z0-9+/_.~=-]{16,})"
        ),
        group=1,
        accept=_random_enough,
        fold_case=True,
    ),
)


def _anchors(text: bytes, anchor: bytes) -> list[int]:
    """Every offset where ``anchor`` occurs in ``text``."""
    out: list[int] = []
    find = text.find
    i = find(anchor)
    while i >= 0:
        out.append(i)
        i = find(anchor, i + 1)
    return out


def _spans(data: bytes) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, kind)`` spans of secrets, in order; earlier rules win."""
    found: list[tuple[int, int, int, str]] = []
    lowered: bytes | None = None
    for priority, rule in enumerate(_RULES):
        text = data
        if rule.fold_case:
            lowered = data.lower() if lowered is None else lowered  # ASCII only: offsets kept
            text = lowered
        match = rule.pattern.match
        for anchor in rule.anchors:
            for pos in _anchors(text, anchor):
                if (
                    rule.fold_case
                    and data.find(b"=", pos, pos + 56) < 0
                    and data.find(b":", pos, pos + 56) < 0
                ):
                    continue  # no assignment close enough: most "key"s in code
                m = match(data, pos)
                if m is None:
                    continue
                start, end = m.span(rule.group)
                if rule.accept is not None and not rule.accept(
                    data[start:end], data[end : end + 1]
                ):
                    continue
                found.append((start, -end, priority, rule.kind))
    found.sort()  # by start, then the longest, then the most specific rule
    kept: list[tuple[int, int, str]] = []
    for start, neg_end, _priority, kind in found:
        if kept and start < kept[-1][1]:
            continue  # inside an earlier match (a JWT inside a "token = ..." line)
        kept.append((start, -neg_end, kind))
    return kept


def scan(data: bytes) -> list[tuple[int, str]]:
    """The ``(line, kind)`` of every secret in a text, without changing it.

    Args:
        data: UTF-8 text.

    Returns:
        1-based lines and kinds, in order of appearance.
    """
    return [(data.count(b"\n", 0, start) + 1, kind) for start, _end, kind in _spans(data)]


def redact(data: bytes) -> Redaction:
    """The text with every secret replaced by ``[REDACTED:kind]``.

    Args:
        data: UTF-8 text.

    Returns:
        The redacted text (the same object when nothing was found) and the findings.
    """
    spans = _spans(data)
    if not spans:
        return Redaction(data, ())
    pieces: list[bytes] = []
    findings: list[Finding] = []
    pos = 0
    out_len = 0
    line = 1
    for start, end, kind in spans:
        line += data.count(b"\n", pos, start)
        piece = data[pos:start]
        pieces.append(piece)
        out_len += len(piece)
        marker = b"[REDACTED:" + kind.encode() + b"]"
        findings.append(Finding(line, kind, out_len))
        pieces.append(marker)
        out_len += len(marker)
        line += data.count(b"\n", start, end)
        pos = end
    pieces.append(data[pos:])
    return Redaction(b"".join(pieces), tuple(findings))


class SecretScanner:
    """``redact`` with a memo by content hash, so text already seen costs one lookup."""

    def __init__(self, *, max_entries: int = MEMO_ENTRIES) -> None:
        """An empty memo.

        Args:
            max_entries: distinct contents remembered (LRU); at least 1.
        """
        self._memo: LRUCache[tuple[int, int], Redaction] = LRUCache(maxsize=max(1, max_entries))
        self.scanned_bytes = 0
        """Bytes actually scanned (memo misses)."""
        self.memo_hits = 0
        """Texts answered from the memo."""

    def redact(self, data: bytes, content_hash: int | None = None) -> Redaction:
        """``redact(data)``, remembered by ``(xxh3_64, length)`` of the text.

        Args:
            data: UTF-8 text.
            content_hash: the text's xxh3_64 when the caller has it (``CachedFile.hash``).

        Returns:
            The same result ``redact`` gives.
        """
        key = (xxhash.xxh3_64_intdigest(data) if content_hash is None else content_hash, len(data))
        got = self._memo.get(key)
        if got is not None:
            self.memo_hits += 1
            return got if got.findings else Redaction(data, ())
        self.scanned_bytes += len(data)
        result = redact(data)
        # A clean text is remembered without its bytes: the cache holds those already.
        self._memo[key] = result if result.findings else _CLEAN
        return result


_CLEAN = Redaction(b"", ())
