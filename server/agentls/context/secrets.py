"""Secrets inside text: the owner of what counts as a secret and how it is redacted.

The workspace's deny-list (``workspace/filters.py``) keeps files *named* like secrets out of the
prompt. This module looks *inside* the text that does go in (attached files, the selection, the
agent's own body) and inside what comes back (a run's output, before history stores it): private
key blocks (PEM, OpenSSH, PGP), PuTTY keys, AWS access keys, GitHub, GitLab and Slack tokens,
OpenAI and Anthropic keys, Google API keys, Hugging Face tokens, JWTs, ``Bearer`` tokens,
passwords in URLs (``postgres://user:pw@host``), and generic ``key = value`` assignments whose
value is long and random enough (Shannon entropy) to be a credential rather than a word. Each
match is replaced by a visible ``[REDACTED:kind]`` marker, and its line and kind are reported so
the manifest can say what was hidden without repeating it. The log scrubber
(``agentls/redaction.py``) runs the same detectors, with its own marker.

Cost. A rule's pattern never scans the whole text; it is tried only where a cheap search says a
match may start. Three kinds of search find those places, each chosen by measurement
(docs/performance.md):

* a *needle*: a single byte that is rare in ordinary text and sits at a fixed offset in every
  match (``J`` of ``eyJ``, ``K`` of ``AKIA``, ``@`` of a URL's credentials), found with
  ``bytes.find``, which is a ``memchr``;
* a *locator*: one regular expression that starts with a literal (the engine's fast path) and
  serves several rules at once: every ``-`` preceded by ``sk``, ``glpat``, ``xoxb``..., every
  ``_`` preceded by ``ghp``, ``hf``, ``github``;
* an *assignment*: ``=``, ``:`` or ``:=`` followed by a 16-character value that holds a digit;
  the generic rule's key word is then looked for in the 64 bytes before it.

``_reference_spans`` is the slow, obviously complete form (every pattern at every offset); a test
keeps both in agreement on the detector corpus and on part of the standard library. A scan's
result depends only on the content, so ``SecretScanner`` remembers it by the content's xxh3 hash
(the loader computed it already): a warm run re-scans nothing. ``agentls bench`` (scenario
``secrets``) reports the cold cost per MB beside the first strategy (one ``bytes.find`` pass per
literal, ``bench/scan_baseline.py``).

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

__all__ = ["KINDS", "Finding", "Redaction", "SecretScanner", "redact", "redact_text", "scan"]

MEMO_ENTRIES = 65_536
"""How many distinct contents the scanner remembers (about 100 bytes each when clean)."""

MIN_GENERIC_ENTROPY = 3.5
"""Bits per character a generic assignment's value needs to count as a secret.

English words and identifiers sit near 2.5-3.2 (``password_reset_handler``: 3.3); random tokens of
16+ characters from a 62-symbol alphabet are near 4 or above.
"""

MIN_GENERIC_LENGTH = 16
"""Shortest value of a generic assignment considered (shorter values are passwords in examples)."""

URL_WINDOW = 512
"""How far before a URL's ``@`` its scheme may start (a longer user/password is not looked for)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret found in a text: where (in the redacted output) and what kind."""

    line: int
    """1-based line of the match's start."""
    kind: str
    """One of ``KINDS``."""
    start: int
    """Byte offset of the marker in the redacted text (used to keep only what a cut leaves)."""


@dataclass(frozen=True, slots=True)
class Redaction:
    """A text with its secrets replaced, and what was replaced."""

    data: bytes
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A kind of secret: where matches can be, the pattern, a check of the value."""

    kind: str
    anchors: tuple[tuple[bytes, int, bytes], ...]
    """``(needle, offset, prefix)``: every match has ``needle`` ``offset`` bytes after its start
    and starts with ``prefix``. The needle is what ``bytes.find`` looks for, so it is the rarest
    part of the prefix (one byte when one is rare enough: then the search is a ``memchr``)."""
    pattern: re.Pattern[bytes]
    """Tried only where an anchor says a match may start (``match``, never a scan)."""
    group: int = 0
    """The group that is redacted (the generic rule keeps the key name visible)."""
    accept: Callable[[bytes, bytes], bool] | None = None
    """Given the value and the byte after it, whether it really is a secret."""
    window: int = 0
    """When not 0, the match starts anywhere up to ``window`` bytes before the needle (on the
    needle's line) and ends just after it: the pattern is searched in that window."""


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
_HAS_UPPER = re.compile(rb"[A-Z]")
_HAS_LOWER = re.compile(rb"[a-z]")


def _random_enough(value: bytes, after: bytes) -> bool:
    """Whether a value looks like a credential rather than code or prose.

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


def _mixed_case_random(value: bytes, after: bytes) -> bool:
    """A token of letters that may hold no digit (Hugging Face): both cases, close to random."""
    return (
        _HAS_UPPER.search(value) is not None
        and _HAS_LOWER.search(value) is not None
        and _entropy(value) >= MIN_GENERIC_ENTROPY
    )


_URL_PLACEHOLDERS = frozenset(
    {b"password", b"passwd", b"pass", b"pwd", b"secret", b"token", b"x", b"xxx", b"..."}
)
"""Passwords that documentation writes in example URLs; a real password is not one of these."""


def _real_password(value: bytes, after: bytes) -> bool:
    """A URL's password that is a value, not a placeholder (``${DB_PW}``, ``<pw>``, ``***``)."""
    if value[:1] in (b"$", b"{", b"<", b"%", b"[") or value.strip(b"*x.") == b"":
        return False
    return value.lower() not in _URL_PLACEHOLDERS


_TOKEN_TAIL = rb"(?![A-Za-z0-9_-])"

_RULES: tuple[_Rule, ...] = (
    _Rule(
        "private_key",  # PEM and OpenSSH keys, PGP private key blocks
        ((b"B", 5, b"-----BEGIN"),),
        re.compile(
            rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            rb"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*)",
            re.DOTALL,
        ),
    ),
    _Rule(
        "putty_key",  # the whole file: its header to the MAC line (or the end)
        ((b"K", 11, b"PuTTY-User-Key-File-"),),
        re.compile(
            rb"PuTTY-User-Key-File-[0-9]+:(?:.*?Private-(?:MAC|Hash):[^\r\n]*|.*)", re.DOTALL
        ),
    ),
    _Rule(
        "aws_access_key",
        ((b"K", 1, b"AKIA"),),  # long-term key ids; temporary ones (ASIA) by a locator
        re.compile(rb"(?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ),
    _Rule(
        "github_token",
        (),  # found by the "_" locator
        re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b"),
    ),
    _Rule(
        "gitlab_token",
        ((b"9", 6, b"GR1348941"),),  # the rest by the "-" locator
        re.compile(rb"\b(?:(?:glpat|gldt|glrt|glptt)-|GR1348941)[A-Za-z0-9_-]{20,}"),
    ),
    _Rule(
        "slack_token",
        ((b"https://hooks.slack.com/", 0, b""),),  # xox...- by the "-" locator
        re.compile(
            rb"\bxox[abposr]-[A-Za-z0-9-]{10,}"
            rb"|https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
        ),
    ),
    _Rule(
        "anthropic_key",
        (),  # found by the "-" locator
        re.compile(rb"(?<![A-Za-z0-9_-])sk-ant-[a-z]+[0-9]*-([A-Za-z0-9_-]{32,})" + _TOKEN_TAIL),
        accept=_random_enough,
    ),
    _Rule(
        "openai_key",  # sk-..., sk-proj-..., sk-svcacct-..., sk-admin-...
        (),  # found by the "-" locator
        re.compile(
            rb"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-)?([A-Za-z0-9_-]{32,})" + _TOKEN_TAIL
        ),
        accept=_random_enough,
    ),
    _Rule(
        "google_api_key",
        ((b"z", 2, b"AIza"),),
        re.compile(rb"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}" + _TOKEN_TAIL),
    ),
    _Rule(
        "huggingface_token",
        (),  # found by the "_" locator
        re.compile(rb"(?<![A-Za-z0-9_])hf_([A-Za-z0-9]{30,})(?![A-Za-z0-9_])"),
        accept=_mixed_case_random,
    ),
    _Rule(
        "jwt",
        ((b"J", 2, b"eyJ"),),
        re.compile(rb"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ),
    _Rule(
        "url_password",  # scheme://user:password@host: the password goes, user and host stay
        ((b"@", 0, b""),),
        re.compile(
            rb"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@\"'<>]*:([^\s/?#@\"'<>]+)@"
        ),
        group=1,
        accept=_real_password,
        window=URL_WINDOW,
    ),
    _Rule(
        "bearer_token",  # Authorization: Bearer <token>, curl -H "Bearer ...", ...
        ((b"B", 0, b"Bearer"), (b"B", 0, b"BEARER")),
        re.compile(rb"B(?:earer|EARER)[ \t]+([A-Za-z0-9._~+/-]{16,}=*)"),
        group=1,
        accept=_random_enough,
    ),
    _Rule(
        "generic_secret",  # found by the "=" and ":" locators and a look back for the key
        (),
        re.compile(
            rb"(?i)(?:key|secret|token|passw(?:or)?d|pwd|credential|auth)[A-Za-z0-9_.-]{0,40}"
            rb"[\"']?[ \t]*(?::=|=|:)[ \t]*[\"']?([A-Za-z0-9+/_.~=-]{16,})"
        ),
        group=1,
        accept=_random_enough,
    ),
)

KINDS: tuple[str, ...] = tuple(rule.kind for rule in _RULES)
"""Every kind a finding can have, most specific first."""

_RULE_INDEX = {rule.kind: i for i, rule in enumerate(_RULES)}


def _needles() -> tuple[tuple[bytes, tuple[tuple[int, int, bytes], ...]], ...]:
    """The rules' anchors grouped by needle, so one search serves every rule that shares it."""
    by_needle: dict[bytes, list[tuple[int, int, bytes]]] = {}
    for index, rule in enumerate(_RULES):
        for needle, offset, prefix in rule.anchors:
            by_needle.setdefault(needle, []).append((index, offset, prefix))
    return tuple((needle, tuple(tries)) for needle, tries in by_needle.items())


_NEEDLES = _needles()
"""``(needle, ((rule index, offset, prefix), ...))`` for every anchored rule."""

_LOCATORS: tuple[tuple[re.Pattern[bytes], tuple[tuple[int, int, bytes], ...]], ...] = (
    (
        # Prefixes that end in "-": one pass finds the "-" (a literal, so the regex engine's
        # fast prefix scan) and the look-behinds keep only those preceded by a token prefix.
        re.compile(
            rb"-(?<=[ktabposr]-)(?:(?<=sk-)|(?<=glpat-)|(?<=gldt-)|(?<=glrt-)|(?<=glptt-)|(?<=xox[abposr]-))"
        ),
        (
            (_RULE_INDEX["anthropic_key"], 2, b"sk-ant-"),
            (_RULE_INDEX["openai_key"], 2, b"sk-"),
            (_RULE_INDEX["gitlab_token"], 5, b"glpat-"),
            (_RULE_INDEX["gitlab_token"], 4, b"gldt-"),
            (_RULE_INDEX["gitlab_token"], 4, b"glrt-"),
            (_RULE_INDEX["gitlab_token"], 5, b"glptt-"),
            (_RULE_INDEX["slack_token"], 4, b"xox"),
        ),
    ),
    (
        # A literal the regex engine scans for faster than bytes.find does for a short needle.
        re.compile(rb"ASIA"),
        ((_RULE_INDEX["aws_access_key"], 0, b"ASIA"),),
    ),
    (
        # Prefixes that end in "_" (GitHub, Hugging Face), likewise.
        re.compile(rb"_(?<=[pousrfb]_)(?:(?<=gh[pousr]_)|(?<=hf_)|(?<=github_))"),
        (
            (_RULE_INDEX["github_token"], 3, b"gh"),
            (_RULE_INDEX["github_token"], 6, b"github_pat_"),
            (_RULE_INDEX["huggingface_token"], 2, b"hf_"),
        ),
    ),
)
"""Regular expressions that find where the token rules without a rare byte may match, with
``(rule index, offset back from the hit, prefix)`` to try at each hit."""

_VALUE = rb"[ \t]*[\"']?(?=[A-Za-z0-9+/_.~=-]{16})(?=[A-Za-z+/_.~=-]*[0-9])"
_ASSIGNMENTS = (
    # All but the literal is look-ahead: the engine scans for the literal (its fast path) and
    # each "=" costs one failed look-ahead, not a backtrack. The second look-ahead (a digit in
    # the value, which ``_random_enough`` requires) leaves few hits for the look back.
    re.compile(rb"=(?=" + _VALUE + rb")"),
    re.compile(rb":(?==?" + _VALUE + rb")"),
)
"""Where the generic rule may match: an ``=``, ``:`` or ``:=`` followed by a long enough value
(the value, not the key, is the rare part: most ``key``s in code have no value after them)."""

_KEY_BEFORE = re.compile(
    rb"(?:key|secret|token|passw(?:or)?d|pwd|credential|auth)[a-z0-9_.-]{0,40}[\"']?[ \t]*\Z"
)
"""The key name that must end just before an assignment, searched in the lowered bytes."""

_KEY_REACH = 64
"""Bytes before an assignment (and the spaces before it) in which its key may start: a key word
of up to 10 bytes, 40 more of the name, a quote."""

_GENERIC = _RULE_INDEX["generic_secret"]


def _try(
    rule: _Rule,
    priority: int,
    data: bytes,
    start: int,
    end: int | None,
    found: list[tuple[int, int, int, str]],
) -> None:
    """Try a rule's pattern at ``start`` (or in ``start:end``) and keep an accepted match."""
    if end is None:
        m = rule.pattern.match(data, start)
    else:  # the match that ends at the anchor; earlier ones have anchors of their own
        m = None
        for candidate in rule.pattern.finditer(data, start, end):
            m = candidate
        if m is not None and m.end() != end:
            m = None
    if m is None:
        return
    s, e = m.span(rule.group)
    if rule.accept is not None and not rule.accept(data[s:e], data[e : e + 1]):
        return
    found.append((s, -e, priority, rule.kind))


def _resolve(found: list[tuple[int, int, int, str]]) -> list[tuple[int, int, str]]:
    """Non-overlapping spans, in order: by start, then the longest, then the most specific rule."""
    found.sort()
    kept: list[tuple[int, int, str]] = []
    for start, neg_end, _priority, kind in found:
        if kept and start < kept[-1][1]:
            continue  # inside an earlier match (a JWT inside a "token = ..." line)
        kept.append((start, -neg_end, kind))
    return kept


def _spans(data: bytes) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, kind)`` spans of secrets, in order; earlier rules win.

    Every place a rule may match is found by a needle (``bytes.find``), a locator (one regular
    expression that starts with a literal) or an assignment; the rule's pattern runs only there.
    """
    found: list[tuple[int, int, int, str]] = []
    startswith = data.startswith
    find = data.find
    for needle, tries in _NEEDLES:
        pos = find(needle)
        while pos >= 0:  # a tight loop: rare bytes still occur thousands of times per MB
            for index, offset, prefix in tries:
                start = pos - offset
                if start < 0 or (prefix and not startswith(prefix, start)):
                    continue
                rule = _RULES[index]
                if rule.window:
                    lo = max(0, pos - rule.window)
                    lo = data.rfind(b"\n", lo, pos) + 1 or lo
                    _try(rule, index, data, lo, pos + 1, found)
                else:
                    _try(rule, index, data, start, None, found)
            pos = find(needle, pos + 1)
    for locator, tries in _LOCATORS:
        for hit in locator.finditer(data):
            pos = hit.start()
            for index, offset, prefix in tries:
                start = pos - offset
                if start >= 0 and startswith(prefix, start):
                    _try(_RULES[index], index, data, start, None, found)
    generic = _RULES[_GENERIC]
    for assignment in _ASSIGNMENTS:
        for hit in assignment.finditer(data):
            pos = hit.start()
            name_end = pos  # before the spaces that align a column of assignments
            while name_end > 0 and data[name_end - 1] in b" \t":
                name_end -= 1
            lo = max(0, name_end - _KEY_REACH)
            key = _KEY_BEFORE.search(data[lo:pos].lower())
            if key is None:
                continue
            start = lo + key.start()
            m = generic.pattern.match(data, start)
            if m is None or m.start(1) <= pos:
                continue
            s, e = m.span(1)
            if generic.accept is None or generic.accept(data[s:e], data[e : e + 1]):
                found.append((s, -e, _GENERIC, generic.kind))
    return _resolve(found)


def _reference_spans(data: bytes) -> list[tuple[int, int, str]]:
    """``_spans`` without anchors: every pattern over the whole text (slow; for tests and bench).

    Each pattern is applied at every offset, so nothing an anchor might miss is missed here.
    """
    found: list[tuple[int, int, int, str]] = []
    for priority, rule in enumerate(_RULES):
        search = rule.pattern.search
        pos = 0
        while True:
            m = search(data, pos)
            if m is None:
                break
            s, e = m.span(rule.group)
            if rule.accept is None or rule.accept(data[s:e], data[e : e + 1]):
                found.append((s, -e, priority, rule.kind))
            pos = m.start() + 1
    return _resolve(found)


def scan(data: bytes) -> list[tuple[int, str]]:
    """The ``(line, kind)`` of every secret in a text, without changing it.

    Args:
        data: UTF-8 text.

    Returns:
        1-based lines and kinds, in order of appearance.
    """
    return [(data.count(b"\n", 0, start) + 1, kind) for start, _end, kind in _spans(data)]


def redact(data: bytes, marker: bytes | None = None) -> Redaction:
    """The text with every secret replaced by ``[REDACTED:kind]`` (or by ``marker``).

    Args:
        data: UTF-8 text.
        marker: what replaces every secret instead of ``[REDACTED:kind]`` (the log scrubber's
            ``[redacted]``).

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
        shown = marker if marker is not None else b"[REDACTED:" + kind.encode() + b"]"
        findings.append(Finding(line, kind, out_len))
        pieces.append(shown)
        out_len += len(shown)
        line += data.count(b"\n", start, end)
        pos = end
    pieces.append(data[pos:])
    return Redaction(b"".join(pieces), tuple(findings))


def redact_text(text: str, marker: str | None = None) -> tuple[str, tuple[Finding, ...]]:
    """``redact`` for a ``str`` (a run's output, a log line, an agent's body).

    Lone surrogates (a provider's broken JSON) survive the round trip unchanged.

    Returns:
        The text with its secrets replaced, and the findings.
    """
    data = text.encode("utf-8", "surrogatepass")
    result = redact(data, None if marker is None else marker.encode("utf-8"))
    if not result.findings:
        return text, ()
    return result.data.decode("utf-8", "surrogatepass"), result.findings


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
