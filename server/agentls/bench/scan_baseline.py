"""The secrets scan as it was first built, kept so the bench can time it beside the current one.

The first scanner found every literal a secret starts with by its own ``bytes.find`` pass over
the text (the case-insensitive key words of the generic rule in a lowered copy) and tried the
rule's pattern at each occurrence. ``context/secrets.py`` now finds the same places with rare-byte
needles, two separator locators and an assignment locator. ``per_literal_spans`` applies the old
strategy to today's rules, so ``agentls bench --scenario secrets`` can show both side by side on
the same text and check that they find the same secrets.
"""

from __future__ import annotations

from agentls.context import secrets

_KEY_WORDS = (b"key", b"secret", b"token", b"passw", b"pwd", b"credential", b"auth")
_ASSIGNMENT_REACH = 56
"""Bytes after a key word in which its ``=``/``:`` must be for the pattern to be tried."""


def _literals() -> list[tuple[bytes, int, int]]:
    """``(literal, offset of the literal in a match, rule index)`` for every rule but generic."""
    out: list[tuple[bytes, int, int]] = []
    for needle, tries in secrets._NEEDLES:
        for index, offset, prefix in tries:
            out.append((prefix, 0, index) if prefix else (needle, offset, index))
    for _locator, tries in secrets._LOCATORS:
        for index, _offset, prefix in tries:
            out.append((prefix, 0, index))
    return out


_LITERALS = _literals()


def per_literal_spans(data: bytes) -> list[tuple[int, int, str]]:
    """``secrets._spans(data)`` by the first strategy: one ``bytes.find`` pass per literal."""
    found: list[tuple[int, int, int, str]] = []
    rules = secrets._RULES
    for literal, offset, index in _LITERALS:
        rule = rules[index]
        find = data.find
        pos = find(literal)
        while pos >= 0:
            if rule.window:
                lo = max(0, pos - rule.window)
                lo = data.rfind(b"\n", lo, pos) + 1 or lo
                secrets._try(rule, index, data, lo, pos + 1, found)
            elif pos >= offset:
                secrets._try(rule, index, data, pos - offset, None, found)
            pos = find(literal, pos + 1)
    lowered = data.lower()
    generic = secrets._GENERIC
    for word in _KEY_WORDS:
        find = lowered.find
        pos = find(word)
        while pos >= 0:
            near = pos + _ASSIGNMENT_REACH
            if data.find(b"=", pos, near) >= 0 or data.find(b":", pos, near) >= 0:
                secrets._try(rules[generic], generic, data, pos, None, found)
            pos = find(word, pos + 1)
    return secrets._resolve(found)
